using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=new tokens, S=all keys (cached + new), D=head dim

/// <summary>
/// What every layer's attention shares in one forward pass: rotary cos/sin for the new tokens, and either the
/// causal flag (no padding, no cache) or an explicit boolean mask [B, 1, T, S] (true = may attend).
/// </summary>
public sealed class AttentionContext : IDisposable
{
    private AttentionContext(Tensor cos, Tensor sin, Tensor? mask, bool isCausal, KvCache? cache)
    {
        Cos = cos;
        Sin = sin;
        Mask = mask;
        IsCausal = isCausal;
        Cache = cache;
    }

    /// <summary>[B, T, D] fp32</summary>
    public Tensor Cos { get; }

    /// <summary>[B, T, D] fp32</summary>
    public Tensor Sin { get; }

    /// <summary>[B, 1, T, S] bool, or null when <see cref="IsCausal"/> (or a single decode step without padding) suffices.</summary>
    public Tensor? Mask { get; }

    public bool IsCausal { get; }

    public KvCache? Cache { get; }

    /// <summary>
    /// Builds the context. <paramref name="keyMask"/> [B, S] marks real tokens (false for left padding) over the
    /// cached and new positions; null means every position is real.
    /// </summary>
    public static AttentionContext Create(Olmo2RotaryEmbedding rotary, Tensor positionIds, Tensor? keyMask, KvCache? cache, long newTokens, Device device)
    {
        var (cos, sin) = rotary.Compute(positionIds); // [B, T, D]
        var past = cache?.Length ?? 0;
        if (keyMask is null && (past == 0 || newTokens == 1))
        {
            return new AttentionContext(cos, sin, null, isCausal: past == 0 && newTokens > 1, cache);
        }

        using var scope = NewDisposeScope();
        var total = past + newTokens;
        var queryPositions = arange(past, total, ScalarType.Int64, device).unsqueeze(1); // [T, 1]
        var keyPositions = arange(0, total, ScalarType.Int64, device).unsqueeze(0); // [1, S]
        var causal = keyPositions.le(queryPositions); // [T, S]
        var mask = causal.unsqueeze(0).unsqueeze(0); // [1, 1, T, S]
        if (keyMask is not null)
        {
            mask = mask.logical_and(keyMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1)); // [B, 1, T, S]
            // A padding query sees no real key; letting it see itself keeps its row finite (no NaN from an empty softmax).
            mask = mask.logical_or(keyPositions.eq(queryPositions).unsqueeze(0).unsqueeze(0));
        }

        return new AttentionContext(cos, sin, mask.MoveToOuterDisposeScope(), isCausal: false, cache);
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
        Mask?.Dispose();
    }
}
