using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=new tokens, S=cached + new tokens, E=experts

/// <summary>Optional inputs of a forward pass.</summary>
public sealed record ForwardOptions
{
    /// <summary>[B, T] int64; defaults to cache length + 0..T-1 for every row.</summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>[B, S] bool: which cached and new positions hold real tokens (false for left padding).</summary>
    public Tensor? KeyMask { get; init; }

    /// <summary>The KV cache to read and extend (incremental decoding).</summary>
    public KvCache? Cache { get; init; }

    /// <summary>[B, E] fp32 additive router bias from <see cref="ExpertMask.ToRouterBias"/> (0 or -inf).</summary>
    public Tensor? ExpertBias { get; init; }

    /// <summary>Collects router logits (and choices) per MoE layer.</summary>
    public RouterTrace? Trace { get; init; }

    /// <summary>Compute logits for the last position only ([B, 1, V]), as decoding needs.</summary>
    public bool LastTokenOnly { get; init; }
}
