using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// silu(gate)·up for decode-sized inputs on the CPU, in managed code, with libtorch's roundings: silu in fp32 as
/// g / (1 + exp(-g)) and rounded to the dtype, then the product rounded to the dtype. Only exp itself may differ from
/// libtorch's vectorised exp, in the last bit.
/// </summary>
/// <remarks>
/// Written by hand because the two libtorch ops and their temporaries cost more than the arithmetic at a few rows,
/// twice per expert in a decode step. Every element is computed by the same scalar code whatever the row count, so
/// a row's result never depends on the rows beside it. Used only without autograd.
/// </remarks>
internal static unsafe class CpuSwiGlu
{
    /// <summary>
    /// Whether <see cref="Apply"/> applies: CPU, no autograd, fp32 or bf16, the same shape and dtype, contiguous, and at most
    /// <see cref="CpuRmsNorm.MaxRows"/> rows unless <paramref name="rowInvariant"/> (then any number, so that no row
    /// count switches to libtorch's arithmetic).
    /// </summary>
    public static bool Applies(Tensor gate, Tensor up, bool rowInvariant) =>
        ManagedKernels.Usable(gate, up)
        && gate.dtype is ScalarType.Float32 or ScalarType.BFloat16 && up.dtype == gate.dtype && gate.shape.SequenceEqual(up.shape)
        && gate.is_contiguous() && up.is_contiguous() && gate.numel() > 0 && gate.numel() < int.MaxValue
        && (rowInvariant || gate.numel() / gate.shape[^1] <= CpuRmsNorm.MaxRows);

    /// <summary>gate and up [..., I] -> silu(gate)·up [..., I] in their dtype.</summary>
    public static Tensor Apply(Tensor gate, Tensor up)
    {
        var width = (int)gate.shape[^1];
        var rows = gate.numel() / width;
        var output = empty(gate.shape, gate.dtype);
        var g = Unsafe.AsPointer(ref gate.bytes.GetPinnableReference());
        var u = Unsafe.AsPointer(ref up.bytes.GetPinnableReference());
        var y = Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        Span<float> silu = stackalloc float[8];
        for (long r = 0; r < rows; r++)
        {
            var offset = r * width;
            var i = 0;
            for (; i + 8 <= width; i += 8) // per row, so that an element's lane never depends on the row count
            {
                if (gate.dtype == ScalarType.BFloat16)
                {
                    var gb = (ushort*)g + offset + i;
                    for (var lane = 0; lane < 8; lane++)
                    {
                        silu[lane] = BFloat16Bits.ToSingle(gb[lane]);
                    }

                    Silu8(silu);
                    var ub = (ushort*)u + offset + i;
                    var yb = (ushort*)y + offset + i;
                    for (var lane = 0; lane < 8; lane++)
                    {
                        yb[lane] = Product(silu[lane], ub[lane]);
                    }
                }
                else
                {
                    new ReadOnlySpan<float>((float*)g + offset + i, 8).CopyTo(silu);
                    Silu8(silu);
                    var yf = (float*)y + offset + i;
                    var uf = (float*)u + offset + i;
                    for (var lane = 0; lane < 8; lane++)
                    {
                        yf[lane] = silu[lane] * uf[lane];
                    }
                }
            }

            for (; i < width; i++)
            {
                if (gate.dtype == ScalarType.BFloat16)
                {
                    ((ushort*)y)[offset + i] = Product(Silu(BFloat16Bits.ToSingle(((ushort*)g)[offset + i])), ((ushort*)u)[offset + i]);
                }
                else
                {
                    ((float*)y)[offset + i] = Silu(((float*)g)[offset + i]) * ((float*)u)[offset + i];
                }
            }
        }

        return output;
    }

    /// <summary>bf16: silu rounded to bf16, then the product of two bf16 values rounded to bf16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Product(float silu, ushort up) =>
        BFloat16Bits.FromSingle(BFloat16Bits.ToSingle(BFloat16Bits.FromSingle(silu)) * BFloat16Bits.ToSingle(up));

    /// <summary>Eight lanes of silu in place, with the vector exp.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Silu8(Span<float> values)
    {
        var x = Vector256.Create<float>(values);
        (x / (Vector256<float>.One + Vector256.Exp(-x))).CopyTo(values);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Silu(float x) => x / (1f + MathF.Exp(-x));
}
