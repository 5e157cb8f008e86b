using System.Buffers.Binary;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;

namespace FlexOlmo.Composition.Released;

/// <summary>
/// Writes one expert of a FlexOlmo checkpoint as an expert package, in the form train-expert writes: per layer its
/// FFN and router row, copied byte for byte in the checkpoint's dtype, and a router bias; then expert.json (once the
/// caller's checks have passed). Shared by import-expert and decompose.
/// </summary>
internal static class FlexExpertPackages
{
    /// <summary>
    /// Writes expert <paramref name="expert"/>'s weights file into <paramref name="folder"/>; returns its digest, hashed
    /// as it was written.
    /// </summary>
    public static FileDigest WriteWeights(string folder, SafetensorsCheckpoint flex, ModelConfig config, int expert, IReadOnlyList<float> bias, CancellationToken cancellationToken)
    {
        var tensors = new List<TensorToWrite>();
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (var projection in TensorNames.FfnProjections)
            {
                var slice = ExpertTensors.Find(flex, config.NumExperts, layer, expert, projection)
                    ?? throw new CheckpointException($"{flex.Source}: has no tensor for expert {expert}'s {projection} in layer {layer}.");
                tensors.Add(new TensorToWrite(ExpertTensorNames.Ffn(layer, projection), slice.DType, slice.Shape, stream =>
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    slice.CopyTo(stream);
                }));
            }

            var row = PublicPart.RouterRow(flex, config, layer, expert);
            tensors.Add(new TensorToWrite(ExpertTensorNames.RouterEmbedding(layer), row.DType, row.Shape, row.CopyTo));
            var value = bias[layer];
            tensors.Add(new TensorToWrite(ExpertTensorNames.RouterBias(layer), SafetensorsDType.F32, [1], stream =>
            {
                Span<byte> bytes = stackalloc byte[4];
                BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
                stream.Write(bytes);
            }));
        }

        Directory.CreateDirectory(folder);
        var sha256 = SafetensorsWriter.WriteFileHashed(Path.Combine(folder, ExpertTensorNames.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "flexolmo-expert" });
        return FileDigest.Written(folder, ExpertTensorNames.WeightsFile, sha256);
    }

    /// <summary>Writes expert.json (unsigned: the owner signs it with publish) beside the weights and opens the package.</summary>
    public static ExpertPackage SaveManifest(string folder, ExpertManifest manifest, FileDigest weights)
    {
        SignedDocument<ExpertManifest>.Create(manifest with { Files = [weights] }, SchemaValidator.ExpertManifest, key: null).Save(Path.Combine(folder, ExpertManifest.FileName));
        return ExpertPackage.Open(folder, verifyFiles: false);
    }

    /// <summary>
    /// Where an expert of a checkpoint came from: the source's config and tensor digests (the tensors' as
    /// <see cref="TensorFingerprint"/> computes them, so anyone can check them against the source), which expert it
    /// was, and whether its router bias came along.
    /// </summary>
    public static ExpertOrigin Origin(string kind, string model, string? tensorsDigest, int expert, bool hasBias) =>
        new(kind, ConfigDigest(model), tensorsDigest, expert, hasBias ? ExpertOrigin.BiasFromSidecar : ExpertOrigin.NoBias, NameOf(model));

    /// <summary>The router provenance of an expert taken from a checkpoint: its row of every layer's router.</summary>
    public static RouterEmbeddingProvenance RouterProvenance(ModelConfig config, int expert, string model) =>
        new("router-row", config.HiddenSize, Source: $"row {expert} of each layer's router of {NameOf(model)}", Layers: config.NumHiddenLayers);

    /// <summary>
    /// The sidecar's entry for expert <paramref name="expert"/> when the model has a sidecar that describes it (one
    /// this tool wrote), else null.
    /// </summary>
    public static SidecarExpert? SidecarEntry(ComposedSidecar? sidecar, int expert) =>
        sidecar is not null && expert < sidecar.Experts.Count && sidecar.Experts[expert].Index == expert ? sidecar.Experts[expert] : null;

    /// <summary>The SHA-256 of a checkpoint's config.json bytes.</summary>
    public static string ConfigDigest(string folder) => FileDigest.Compute(folder, ModelConfig.FileName).Sha256;

    /// <summary>The dimensions an expert shares with its anchor.</summary>
    public static Architecture ArchitectureOf(ModelConfig anchorConfig) =>
        new(ModelConfig.Olmo2, anchorConfig.HiddenSize, anchorConfig.IntermediateSize, anchorConfig.NumHiddenLayers, anchorConfig.VocabSize);

    /// <summary>The folder's name, for messages and provenance (never a data path).</summary>
    public static string NameOf(string folder) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));

    /// <summary>An output folder that does not exist yet (nothing is ever written over).</summary>
    public static void CheckNew(string folder, string option)
    {
        if (Path.Exists(folder))
        {
            throw new FlexOlmoException($"{option} {folder}: already exists; choose a new folder (nothing was changed).");
        }
    }
}
