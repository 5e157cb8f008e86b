using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

// B=batch, T=tokens, V=vocabulary, N=B*T, E=experts

/// <summary>
/// The training objective: cross-entropy + a logit z-loss (weight * mean logsumexp(logits)^2) + a router z-loss per
/// MoE layer (weight * mean logsumexp(router logits)^2), as the FlexOlmo recipe. All in fp32.
/// </summary>
internal static class LanguageModelLoss
{
    /// <summary>
    /// The loss of a batch of instances [B, L+1] (inputs [:, :-1], labels [:, 1:]), with the router z-loss over every
    /// MoE layer of a FlexOlmo model: what every training task minimises.
    /// </summary>
    public static (Tensor Total, Tensor CrossEntropy) OfBatch(Olmo2ForCausalLM model, Tensor batch, TrainingSettings settings)
    {
        var length = batch.shape[1] - 1;
        using var trace = model.Config.IsMoe ? new RouterTrace() : null;
        var logits = model.Forward(batch.narrow(1, 0, length), new ForwardOptions { Trace = trace }); // [B, L, V]
        return Compute(logits, batch.narrow(1, 1, length), settings.LogitZLoss, trace, settings.RouterZLoss);
    }

    /// <summary>
    /// Back-propagates <paramref name="weight"/> times the loss of <paramref name="batch"/> [B, L+1] through the whole graph
    /// at once (every activation kept): (loss, cross-entropy), unweighted.
    /// </summary>
    public static (double Total, double CrossEntropy) Backward(Olmo2ForCausalLM model, Tensor batch, TrainingSettings settings, double weight)
    {
        using var scope = NewDisposeScope();
        var (total, crossEntropy) = OfBatch(model, batch, settings);
        (total * weight).backward();
        return (total.item<float>(), crossEntropy.item<float>());
    }

    /// <summary>(total loss to backpropagate, cross-entropy alone).</summary>
    public static (Tensor Total, Tensor CrossEntropy) Compute(Tensor logits, Tensor labels, double logitZLoss, RouterTrace? trace, double routerZLoss)
    {
        using var scope = NewDisposeScope();
        var scores = logits.to(ScalarType.Float32); // [B, T, V]
        var logNormaliser = scores.logsumexp(-1); // [B, T]
        var picked = scores.gather(-1, labels.unsqueeze(-1)).squeeze(-1); // [B, T]
        var crossEntropy = (logNormaliser - picked).mean();
        var total = crossEntropy + (logitZLoss * logNormaliser.pow(2).mean());
        if (trace is not null && routerZLoss > 0)
        {
            foreach (var routerLogits in trace.Logits)
            {
                total = total + (routerZLoss * routerLogits.logsumexp(-1).pow(2).mean()); // [N, E] -> scalar
            }
        }

        return (total.MoveToOuterDisposeScope(), crossEntropy.MoveToOuterDisposeScope());
    }
}
