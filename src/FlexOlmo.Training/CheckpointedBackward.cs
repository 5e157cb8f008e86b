using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

// B=instances, L=sequence length, T=tokens of a head chunk, H=hidden, V=vocabulary

/// <summary>
/// Activation checkpointing by layer: the forward pass runs without autograd and keeps only each layer's input; the
/// backward pass then walks the layers from the last to the first, recomputing one layer with autograd and
/// back-propagating the gradient of its output into its weights and its input. The LM head's loss is taken in chunks
/// of <see cref="TrainingMemory.HeadChunkTokens"/> tokens, so the logits of a whole instance never exist at once.
/// The gradients are those of the plain backward pass (a test compares them); the cost is a second forward pass of the
/// layers. After each segment <c>afterSegment</c> runs, so gradients can be moved to their fp32 masters while only
/// one layer's worth exists in the compute dtype.
/// </summary>
/// <remarks>
/// Written here because TorchSharp 0.107 has no torch.utils.checkpoint; running the segments by hand needs nothing
/// but backward with an explicit output gradient.
/// </remarks>
internal static class CheckpointedBackward
{
    /// <summary>
    /// Back-propagates <paramref name="weight"/> times the loss of <paramref name="batch"/> [B, L+1] and returns the
    /// loss and its cross-entropy (unweighted), as <see cref="LanguageModelLoss.Backward"/> does without checkpointing.
    /// Throws <see cref="OperationCanceledException"/> between layers when <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static (double Total, double CrossEntropy) Run(Olmo2ForCausalLM model, Tensor batch, TrainingSettings settings, double weight, Action afterSegment, CancellationToken cancellationToken = default)
    {
        using var scope = NewDisposeScope();
        var length = batch.shape[1] - 1;
        var inputs = batch.narrow(1, 0, length); // [B, L]
        var labels = batch.narrow(1, 1, length); // [B, L]
        var stack = model.Model;
        var layers = stack.Layers;
        using var context = stack.CausalContext(inputs.shape[0], length);
        var saved = new Tensor[layers.Count + 1]; // each layer's input, then the last layer's output: [B, L, H]
        using (no_grad())
        {
            saved[0] = stack.EmbedTokens.forward(inputs);
            for (var l = 0; l < layers.Count; l++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                saved[l + 1] = layers[l].Forward(saved[l], context, null, null);
            }
        }

        var (total, crossEntropy, gradient) = HeadBackward(model, saved[^1], labels, settings, weight);
        saved[^1].Dispose();
        afterSegment();
        var routerZLoss = model.Config.IsMoe ? settings.RouterZLoss : 0;
        var embeddingTrained = stack.EmbedTokens.Weight.requires_grad;
        for (var l = layers.Count - 1; l >= 0; l--)
        {
            cancellationToken.ThrowIfCancellationRequested(); // a layer at a time, so Ctrl-C is answered within seconds
            using var layerScope = NewDisposeScope();
            using var trace = routerZLoss > 0 ? new RouterTrace() : null;
            var input = saved[l].detach().requires_grad_(l > 0 || embeddingTrained); // [B, L, H]
            var output = layers[l].Forward(input, context, null, trace); // [B, L, H]
            var roots = new List<Tensor> { output };
            var gradients = new List<Tensor> { gradient };
            if (trace is not null)
            {
                var auxiliary = trace.Logits.Select(logits => routerZLoss * logits.logsumexp(-1).pow(2).mean()).Aggregate((a, b) => a + b); // scalar
                total += auxiliary.item<float>();
                roots.Add(auxiliary);
                gradients.Add(full_like(auxiliary, weight));
            }

            autograd.backward(roots, gradients);
            gradient.Dispose();
            gradient = l > 0 || embeddingTrained ? input.grad!.detach().MoveToOuterDisposeScope() : empty(0);
            saved[l].Dispose();
            afterSegment();
        }

        if (embeddingTrained)
        {
            var embedded = stack.EmbedTokens.forward(inputs); // [B, L, H]
            autograd.backward([embedded], [gradient]);
            afterSegment();
        }

        gradient.Dispose();
        return (total, crossEntropy);
    }

    /// <summary>
    /// The loss of the head over the last layer's output, chunk by chunk along the sequence: back-propagates into the
    /// head's weights and returns the gradient of the layers' output [B, L, H].
    /// </summary>
    private static (double Total, double CrossEntropy, Tensor Gradient) HeadBackward(Olmo2ForCausalLM model, Tensor layersOutput, Tensor labels, TrainingSettings settings, double weight)
    {
        var length = layersOutput.shape[1];
        var top = layersOutput.detach().requires_grad_(true); // [B, L, H]
        double total = 0;
        double crossEntropy = 0;
        var chunk = Math.Max(1, TrainingMemory.HeadChunkTokens / (int)layersOutput.shape[0]);
        for (long start = 0; start < length; start += chunk)
        {
            using var chunkScope = NewDisposeScope();
            var count = Math.Min(chunk, length - start);
            var logits = model.Head(top.narrow(1, start, count)); // [B, T, V]
            var (chunkTotal, chunkCrossEntropy) = LanguageModelLoss.Compute(logits, labels.narrow(1, start, count), settings.LogitZLoss, null, 0);
            var share = (double)count / length; // the loss is a mean over every token
            (chunkTotal * (share * weight)).backward();
            total += chunkTotal.item<float>() * share;
            crossEntropy += chunkCrossEntropy.item<float>() * share;
        }

        return (total, crossEntropy, top.grad!.detach());
    }
}
