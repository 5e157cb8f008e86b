using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Formats;
using FlexOlmo.Packages;
using FlexOlmo.Training.Data;
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

        if (request.RouterEmbedding is null && request.PublicData.Count == 0)
        {
            throw new TrainingException("Give --public-data (documents to embed for r_pub) or --router-embedding FILE.");
        }

        var name = Naming.CheckName(request.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.Model))).ToLowerInvariant(), "anchor name");
        log?.Report($"fingerprinting {request.Model}");
        var fingerprint = TensorFingerprint.Compute(request.Model);
        var (embedding, provenance) = PublicEmbedding(request, config, log, cancellationToken);
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
                foreach (var file in Directory.EnumerateFiles(request.Model).Where(IsModelFile).Order(StringComparer.Ordinal))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
                    files.Add(FileDigest.Compute(folder, $"{modelPath}/{Path.GetFileName(file)}"));
                }
            }

            RouterEmbeddingFile.Write(Path.Combine(folder, AnchorPackage.RouterEmbeddingFile), embedding, provenance);
            files.Add(FileDigest.Compute(folder, AnchorPackage.RouterEmbeddingFile));
            var manifest = new AnchorManifest(
                name,
                fingerprint,
                new AnchorModel(modelPath, new Architecture(config.ModelType, config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers, config.VocabSize)),
                new AnchorRouterEmbedding(AnchorPackage.RouterEmbeddingFile, provenance),
                files,
                DateTimeOffset.UtcNow,
                ToolInfo.Current,
                request.Description);
            SignedDocument<AnchorManifest>.Create(manifest, SchemaValidator.AnchorManifest, key: null).Save(Path.Combine(folder, AnchorManifest.FileName));
        });
        return AnchorPackage.Open(request.Out);
    }

    /// <summary>Checkpoint, config and tokenizer files; not training logs or checkpoints of a run.</summary>
    internal static bool IsModelFile(string path)
    {
        var name = Path.GetFileName(path);
        return !name.StartsWith('.') && name != TrainingLoop.MetricsFile
            && (name.EndsWith(".json", StringComparison.Ordinal) || name.EndsWith(".safetensors", StringComparison.Ordinal)
                || name.EndsWith(".txt", StringComparison.Ordinal) || name.EndsWith(".model", StringComparison.Ordinal) || name.EndsWith(".jinja", StringComparison.Ordinal));
    }

    private static (float[], RouterEmbeddingProvenance) PublicEmbedding(AnchorRequest request, ModelConfig config, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (request.RouterEmbedding is { } path)
        {
            var (vector, provenance) = RouterEmbeddingFile.Read(path);
            var digest = FileDigest.Compute(Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFileName(path)).Sha256;
            return vector.Length == config.HiddenSize
                ? (vector, provenance ?? new RouterEmbeddingProvenance("external", vector.Length, Source: Path.GetFileName(path), SourceSha256: digest))
                : (OrthogonalProjection.Project(vector, config.HiddenSize, request.Seed),
                   new RouterEmbeddingProvenance("external", config.HiddenSize, Source: Path.GetFileName(path), SourceSha256: digest, Projection: new Projection("orthogonal", vector.Length, request.Seed)));
        }

        var eos = GenerationDefaults.EosTokenIds(request.Model, config) is { Count: > 0 } ids ? ids[0] : throw new TrainingException($"{request.Model}: config.json has no eos_token_id.");
        var tokenizer = TokenizerLoader.TryLoad(request.Model, config) ?? new Dolma2Tokenizer();
        var files = DataFiles.Expand(request.PublicData);
        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, tokenizer, eos);
        using var data = new TokenDataset(cache.Prepare(files, config.VocabSize > 65536 ? 4 : 2, log, cancellationToken), config.VocabSize);
        var device = TorchRuntime.ResolveDevice(request.Device);
        using var model = CheckpointLoader.Load(request.Model, device, TorchRuntime.ResolveDType(request.DType, config.StorageDType));
        log?.Report($"r_pub: mean of the model's mean-pooled hidden states over up to {request.Samples} public documents");
        var embedding = DomainEmbedder.FromModel(model, data, eos, request.Samples, Math.Min(request.SeqLen, config.MaxPositionEmbeddings), request.Seed, cancellationToken);
        return (embedding, new RouterEmbeddingProvenance("anchor-mean-hidden", embedding.Length, Samples: request.Samples));
    }
}
