using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Packages;

namespace FlexOlmo.Training.Embedding;

/// <summary>
/// Where a router embedding comes from, with its provenance: an external embedder's vector file, or the mean
/// hidden state of a dense model over sampled documents. prepare-anchor, embed-domain and train-expert share these.
/// </summary>
public static class RouterEmbeddingSource
{
    /// <summary>
    /// A vector file (.safetensors, .npy, .json). A vector of the model's width is used as it is (keeping the
    /// provenance it records); another width is projected with a seeded orthogonal projection.
    /// </summary>
    public static (float[] Vector, RouterEmbeddingProvenance Provenance) FromFile(string path, int width, long seed, IProgress<string>? log = null)
    {
        var (vector, recorded) = RouterEmbeddingFile.Read(path);
        var source = Path.GetFileName(path);
        var digest = FileDigest.Compute(Path.GetDirectoryName(Path.GetFullPath(path))!, source).Sha256;
        if (vector.Length == width)
        {
            return (vector, recorded ?? new RouterEmbeddingProvenance("external", width, Source: source, SourceSha256: digest));
        }

        log?.Report($"router embedding: {path} has width {vector.Length}; projecting to {width} with a seeded orthogonal projection (seed {seed})");
        return (OrthogonalProjection.Project(vector, width, seed),
            new RouterEmbeddingProvenance("external", width, Source: source, SourceSha256: digest, Projection: new Projection("orthogonal", vector.Length, seed)));
    }

    /// <summary>The mean of a dense model's mean-pooled hidden states over up to <paramref name="samples"/> documents, tokenised with the model's tokenizer.</summary>
    public static (float[] Vector, RouterEmbeddingProvenance Provenance) FromDocuments(
        string modelFolder, IReadOnlyList<string> data, int samples, int seqLen, long seed, string device, string dtype, string? tokenCache,
        IProgress<string>? log, CancellationToken cancellationToken)
    {
        var config = ModelConfig.Load(modelFolder);
        var eos = GenerationDefaults.EosTokenIds(modelFolder, config) is { Count: > 0 } ids
            ? ids[0]
            : throw new TrainingException($"{modelFolder}: config.json has no eos_token_id, which is needed to separate documents.");
        var cache = new TokenCache(tokenCache ?? TokenCache.DefaultFolder, new TextEncoding(() => TokenizerLoader.Load(modelFolder, config), () => eos));
        using var dataset = new TokenDataset(cache.Prepare(DataFiles.Expand(data), TokenWidth.ForVocabulary(config.VocabSize), log, cancellationToken), config.VocabSize);
        using var model = CheckpointLoader.Load(modelFolder, TorchRuntime.ResolveDevice(device), TorchRuntime.ResolveDType(dtype, config.StorageDType));
        log?.Report($"router embedding: mean of the model's mean-pooled hidden states over up to {samples} documents");
        var embedding = DomainEmbedder.FromModel(model, dataset, eos, samples, seqLen > 0 ? Math.Min(seqLen, config.MaxPositionEmbeddings) : seqLen, seed, cancellationToken);
        return (embedding, new RouterEmbeddingProvenance("anchor-mean-hidden", embedding.Length, Samples: samples));
    }
}
