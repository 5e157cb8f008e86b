using static TorchSharp.torch;

namespace FlexOlmo.Data;

// B=instances, L=sequence length, V=vocabulary

/// <summary>Perplexity over held-out instances: exp of the mean cross-entropy per predicted token.</summary>
public static class PerplexityMeter
{
    /// <param name="logits">Computes logits [B, L, V] for inputs [B, L].</param>
    public static (long Tokens, double Perplexity) Measure(Func<Tensor, Tensor> logits, TokenDataset data, IReadOnlyList<long> instances, int seqLen, int microBatch, Device device, CancellationToken cancellationToken = default)
    {
        if (instances.Count == 0)
        {
            return (0, double.NaN);
        }

        using var noGrad = no_grad();
        double nats = 0;
        long tokens = 0;
        foreach (var chunk in instances.Chunk(microBatch))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var batch = Batches.Make(data, chunk, seqLen, device); // [B, L+1]
            var inputs = batch.narrow(1, 0, seqLen); // [B, L]
            var labels = batch.narrow(1, 1, seqLen); // [B, L]
            nats += SumCrossEntropy(logits(inputs), labels);
            tokens += chunk.Length * (long)seqLen;
        }

        return (tokens, Math.Exp(nats / tokens));
    }

    /// <summary>
    /// Each predicted token's cross-entropy (nats) over the instances, in instance order: [instances][seqLen]. For
    /// ensembles that weigh models token by token.
    /// </summary>
    public static double[][] TokenLosses(Func<Tensor, Tensor> logits, TokenDataset data, IReadOnlyList<long> instances, int seqLen, int microBatch, Device device, CancellationToken cancellationToken = default)
    {
        using var noGrad = no_grad();
        var rows = new List<double[]>(instances.Count);
        foreach (var chunk in instances.Chunk(microBatch))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var batch = Batches.Make(data, chunk, seqLen, device); // [B, L+1]
            var losses = CrossEntropy(logits(batch.narrow(1, 0, seqLen)), batch.narrow(1, 1, seqLen)).to(ScalarType.Float64).cpu(); // [B, L]
            var values = losses.data<double>().ToArray();
            rows.AddRange(values.Chunk(seqLen));
        }

        return [.. rows];
    }

    /// <summary>Summed cross-entropy (nats) of logits [B, T, V] against labels [B, T], in fp32, without autograd.</summary>
    public static double SumCrossEntropy(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        return CrossEntropy(logits, labels).to(ScalarType.Float64).sum().item<double>();
    }

    /// <summary>Cross-entropy per token [B, T] (fp32) of logits [B, T, V] against labels [B, T].</summary>
    private static Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        var scores = logits.to(ScalarType.Float32); // [B, T, V]
        var picked = scores.gather(-1, labels.unsqueeze(-1)).squeeze(-1); // [B, T]
        return scores.logsumexp(-1) - picked; // [B, T]
    }
}
