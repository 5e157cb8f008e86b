using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// N=tokens (B*T), E=experts, k=experts per token

/// <summary>
/// Collects, per MoE layer, what the router computed: the true router logits (before expert masks) for the
/// router z-loss and parity checks, and optionally the chosen experts and their weights.
/// </summary>
public sealed class RouterTrace : IDisposable
{
    private readonly List<Tensor> _logits = [];
    private readonly List<(Tensor Indices, Tensor Weights)> _choices = [];

    public RouterTrace(bool recordChoices = false, bool recordLogits = true, bool countUsage = false)
    {
        RecordChoices = recordChoices;
        RecordLogits = recordLogits;
        Usage = countUsage ? [] : null;
    }

    public bool RecordChoices { get; }

    public bool RecordLogits { get; }

    /// <summary>Routings per expert, summed over layers and tokens (one per token, layer and chosen expert); null unless counting.</summary>
    public long[]? Usage { get; private set; }

    internal void AddUsage(int expert, long count, int experts)
    {
        if (Usage is null)
        {
            return;
        }

        if (Usage.Length < experts)
        {
            var grown = new long[experts];
            Usage.CopyTo(grown, 0);
            Usage = grown;
        }

        Usage[expert] += count;
    }

    /// <summary>Router logits per layer, fp32 [N, E] (with the router bias, before expert masks).</summary>
    public IReadOnlyList<Tensor> Logits => _logits;

    /// <summary>Chosen experts [N, k] and their weights [N, k] per layer, when <see cref="RecordChoices"/> is set.</summary>
    public IReadOnlyList<(Tensor Indices, Tensor Weights)> Choices => _choices;

    /// <summary>Records one layer's router logits; the trace owns them from then on.</summary>
    internal void AddLogits(Tensor logits)
    {
        if (RecordLogits)
        {
            _logits.Add(logits.DetachFromDisposeScope());
        }
    }

    internal void AddChoices(Tensor indices, Tensor weights) => _choices.Add((indices.DetachFromDisposeScope(), weights.DetachFromDisposeScope()));

    public void Dispose()
    {
        foreach (var t in _logits)
        {
            t.Dispose();
        }

        foreach (var (i, w) in _choices)
        {
            i.Dispose();
            w.Dispose();
        }
    }
}
