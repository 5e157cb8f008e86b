using FlexOlmo.Core.Kernels;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=tokens, D=head dim

/// <summary>
/// Default (unscaled) RoPE with the half-split layout: inverse frequencies and cos/sin in fp32,
/// <c>emb = cat(freqs, freqs)</c>, <c>rotate_half(x) = cat(-x[D/2:], x[:D/2])</c>.
/// </summary>
public sealed class Olmo2RotaryEmbedding
{
    private readonly Tensor _inverseFrequencies; // [D/2] fp32

    public Olmo2RotaryEmbedding(int headDim, double theta, Device device)
    {
        HeadDim = headDim;
        using var exponents = arange(0, headDim, 2, ScalarType.Int64).to(ScalarType.Float32) / headDim; // [D/2]
        using var powers = pow(theta, exponents);
        _inverseFrequencies = (1.0 / powers).to(device).DetachFromDisposeScope();
    }

    public int HeadDim { get; }

    /// <summary>Cos and sin for each position: positions [B, T] (int64) -> ([B, T, D], [B, T, D]) fp32.</summary>
    public (Tensor Cos, Tensor Sin) Compute(Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        var positions = positionIds.to(ScalarType.Float32).unsqueeze(-1); // [B, T, 1]
        var frequencies = positions * _inverseFrequencies; // [B, T, D/2]
        var embedding = frequencies.repeat(1, 1, 2); // [B, T, D]: the frequencies twice over, as HF's cat(freqs, freqs)
        return (embedding.cos().MoveToOuterDisposeScope(), embedding.sin().MoveToOuterDisposeScope());
    }

    /// <summary>Rotates x [B, N, T, D] by cos/sin [B, T, D]; the product is taken in fp32 and cast back.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        if (CpuRotary.Applies(x, cos, sin))
        {
            return CpuRotary.Apply(x, cos, sin); // the same roundings without the op dispatch and its temporaries
        }

        using var scope = NewDisposeScope();
        var half = x.size(-1) / 2;
        var c = cos.unsqueeze(1); // [B, 1, T, D]
        var s = sin.unsqueeze(1); // [B, 1, T, D]
        var first = x.narrow(-1, 0, half); // [B, N, T, D/2]
        var second = x.narrow(-1, half, half); // [B, N, T, D/2]
        var rotated = cat([second.neg(), first], -1); // [B, N, T, D]
        return ((x * c) + (rotated * s)).to(x.dtype).MoveToOuterDisposeScope();
    }
}
