using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Embedding;

// T=tokens, H=hidden

/// <summary>
/// Domain-informed router initialisation with the anchor as embedder (paper App. A.2 fallback): the plain mean,
/// over up to N documents sampled from the data, of each document's mean-pooled final hidden states, each
/// L2-normalised first as sentence embedders such as the reference's GritLM output them. Unnormalised pooled
/// states have norms of several units, and against the un-normalised residual stream they saturate the router
/// (measured on a tiny pretrained anchor: a logit gap of 17-20 in layer 1, the owner's expert taking ~100% of every
/// token, public or not; normalised: gaps below 1 and routing that training can move).
/// </summary>
internal static class DomainEmbedder
{
    public static float[] FromModel(Olmo2ForCausalLM model, TokenDataset data, int eosId, int samples, int maxTokens, long seed, CancellationToken cancellationToken = default)
    {
        if (samples < 1)
        {
            throw new TrainingException($"--samples must be at least 1 (got {samples}).");
        }

        if (maxTokens < 2 || maxTokens > model.Config.MaxPositionEmbeddings)
        {
            throw new TrainingException($"--seq-len must be between 2 and the model's max_position_embeddings ({model.Config.MaxPositionEmbeddings}) (got {maxTokens}).");
        }

        var documents = DocumentSampler.Sample(data, eosId, samples, seed, 1, cancellationToken);
        if (documents.Count == 0)
        {
            throw new TrainingException("The data holds no document to embed.");
        }

        using var noGrad = no_grad();
        using var sum = zeros([model.Config.HiddenSize], ScalarType.Float64);
        var buffer = new long[maxTokens];
        foreach (var (start, length) in documents)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var count = (int)Math.Min(length, maxTokens);
            data.Read(start, buffer.AsSpan(0, count));
            var ids = tensor(buffer.AsSpan(0, count).ToArray(), [1, count]).to(model.Device); // [1, T]
            var hidden = model.ForwardHidden(ids); // [1, T, H]
            var pooled = hidden[0].to(ScalarType.Float64).mean([0]).cpu(); // [H]
            sum.add_(pooled / pooled.norm().clamp_min(1e-12));
        }

        return (sum / documents.Count).to(ScalarType.Float32).data<float>().ToArray();
    }
}
