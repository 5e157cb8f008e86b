using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Training.Embedding;

namespace FlexOlmo.Training.Anchors;

/// <summary>What <c>flexolmo prepare-anchor</c> was asked to do.</summary>
public sealed record AnchorRequest
{
    public required string Model { get; init; }

    public required string Out { get; init; }

    public string? Name { get; init; }

    public string? Description { get; init; }

    /// <summary>Public documents whose mean embedding becomes r_pub.</summary>
    public IReadOnlyList<string> PublicData { get; init; } = [];

    /// <summary>A ready-made r_pub vector (projected when its width differs).</summary>
    public string? RouterEmbedding { get; init; }

    /// <summary>
    /// A 2-expert flex_olmo model built on this anchor (a released Flex-DOMAIN-2x7B-1T): r_pub is row 0 of each
    /// layer's router, after its public part is proven to be the model.
    /// </summary>
    public string? RouterEmbeddingFrom { get; init; }

    /// <summary>Refer to the model folder instead of copying it into the anchor.</summary>
    public bool Reference { get; init; }

    public int Samples { get; init; } = 1000;

    public int SeqLen { get; init; } = 2048;

    public long Seed { get; init; }

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public string? TokenCache { get; init; }
}

/// <summary>
/// <c>flexolmo prepare-anchor</c>: turns a dense OLMo-2 checkpoint into an anchor: the model (copied, or referred to),
/// the public router embedding r_pub that every expert trained against it shares, and anchor.json with a fingerprint
/// over tensor names, dtypes, shapes and bytes. The folder appears only when complete.
/// </summary>
public static class AnchorBuilder
{
    public static AnchorPackage Prepare(AnchorRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        var config = ModelConfig.Load(request.Model);
        if (config.IsMoe)
        {
            throw new TrainingException($"{request.Model}: an anchor is a dense OLMo-2 model (model_type olmo2), not {config.ModelType}.");
        }

        var sources = (request.RouterEmbedding is null ? 0 : 1) + (request.PublicData.Count == 0 ? 0 : 1) + (request.RouterEmbeddingFrom is null ? 0 : 1);
        if (sources != 1)
        {
            throw new TrainingException(sources == 0
                ? "Give --public-data (documents to embed for r_pub), --router-embedding FILE, or --router-embedding-from MODEL (a released 2-expert model's public router rows)."
                : "Give only one of --public-data, --router-embedding and --router-embedding-from: each is a whole r_pub.");
        }

        var name = Naming.CheckName(request.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.Model))).ToLowerInvariant(), "anchor name");
        log?.Report($"fingerprinting {request.Model}");
        var fingerprint = TensorFingerprint.Compute(request.Model);
        var (rows, provenance) = PublicRows(request, config, log, cancellationToken);
        AtomicFile.WriteDirectory(request.Out, folder =>
        {
            var files = new List<FileDigest>();
            string modelPath;
            if (request.Reference)
            {
                modelPath = Path.GetFullPath(request.Model);
            }
            else
            {
                modelPath = AnchorPackage.ModelFolderName;
                var target = Directory.CreateDirectory(Path.Combine(folder, modelPath)).FullName;
                foreach (var file in ModelFolderFiles.List(request.Model))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    File.Copy(Path.Combine(request.Model, file), Path.Combine(target, file));
                    files.Add(FileDigest.Compute(folder, $"{modelPath}/{file}"));
                }
            }

            var written = RouterEmbeddingFile.WriteRows(Path.Combine(folder, AnchorPackage.RouterEmbeddingFile), rows, provenance);
            var architecture = new Architecture(config.ModelType, config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers, config.VocabSize);
            AnchorPackage.WriteManifest(folder, name, fingerprint, modelPath, architecture, written, files, request.Description);
        });
        return AnchorPackage.Open(request.Out);
    }

    /// <summary>r_pub of each layer ([L][H]) and how it was made.</summary>
    private static (float[][] Rows, RouterEmbeddingProvenance Provenance) PublicRows(AnchorRequest request, ModelConfig config, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (request.RouterEmbeddingFrom is { } from)
        {
            return RowsFromModel(request.Model, config, from, log);
        }

        var (vector, provenance) = PublicEmbedding(request, config, log, cancellationToken);
        return (Enumerable.Repeat(vector, config.NumHiddenLayers).ToArray(), provenance);
    }

    /// <summary>
    /// Row 0 of each layer's router of a 2-expert model (released models keep r_pub there, per layer), taken only
    /// after every tensor of its public part (embeddings, attention, norms, lm_head, expert 0's FFN) is shown to be
    /// the dense model's, bit for bit.
    /// </summary>
    private static (float[][] Rows, RouterEmbeddingProvenance Provenance) RowsFromModel(string model, ModelConfig config, string from, IProgress<string>? log)
    {
        var flexConfig = ModelConfig.Load(from);
        if (!flexConfig.IsMoe)
        {
            throw new TrainingException($"--router-embedding-from {from}: is a dense {flexConfig.ModelType} model; r_pub is taken from a flex_olmo model's routers (such as a released Flex-DOMAIN-2x7B-1T).");
        }

        PublicPart.CheckDimensions(config, flexConfig, $"--router-embedding-from {from}");
        using var flex = SafetensorsCheckpoint.Open(from);
        using var dense = SafetensorsCheckpoint.Open(model);
        log?.Report($"checking that {from} is built on {model}, tensor by tensor");
        if (PublicPart.FirstDifference(dense, flex, flexConfig) is { } difference)
        {
            throw new TrainingException($"--router-embedding-from {from}: is not built on --model {model}: it differs first in {difference}. Take r_pub from a model trained against this anchor.");
        }

        var rows = PublicPart.RouterRows(flex, flexConfig, 0);
        var source = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(from)));
        return (rows, new RouterEmbeddingProvenance("router-row", config.HiddenSize, Source: $"row 0 of each layer's router of {source}", SourceSha256: FileDigest.Compute(from, ModelConfig.FileName).Sha256));
    }

    private static (float[], RouterEmbeddingProvenance) PublicEmbedding(AnchorRequest request, ModelConfig config, IProgress<string>? log, CancellationToken cancellationToken) =>
        request.RouterEmbedding is { } path
            ? RouterEmbeddingSource.FromFile(path, config.HiddenSize, request.Seed, log)
            : RouterEmbeddingSource.FromDocuments(request.Model, request.PublicData, request.Samples, request.SeqLen, request.Seed, request.Device, request.DType, request.TokenCache, log, cancellationToken);
}
