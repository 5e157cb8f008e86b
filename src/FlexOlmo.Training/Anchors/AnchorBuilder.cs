using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
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
                foreach (var name in ModelFolderFiles.List(request.Model))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    File.Copy(Path.Combine(request.Model, name), Path.Combine(target, name));
                    files.Add(FileDigest.Compute(folder, $"{modelPath}/{name}"));
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

    private static (float[], RouterEmbeddingProvenance) PublicEmbedding(AnchorRequest request, ModelConfig config, IProgress<string>? log, CancellationToken cancellationToken) =>
        request.RouterEmbedding is { } path
            ? RouterEmbeddingSource.FromFile(path, config.HiddenSize, request.Seed, log)
            : RouterEmbeddingSource.FromDocuments(request.Model, request.PublicData, request.Samples, request.SeqLen, request.Seed, request.Device, request.DType, request.TokenCache, log, cancellationToken);
}
