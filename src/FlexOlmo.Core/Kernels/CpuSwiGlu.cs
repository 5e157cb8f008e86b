using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// silu(gate)·up for decode-sized inputs on the CPU, in managed code, with libtorch's roundings: silu in fp32 as
/// g / (1 + exp(-g)) and rounded to the dtype, then the product rounded to the dtype. Only exp itself may differ from
/// libtorch's vectorised exp, in the last bit.
/// </summary>
/// <remarks>
/// Written by hand because the two libtorch ops and their temporaries cost more than the arithmetic at a few rows,
/// twice per expert in a decode step. Each row is computed the same way whatever the row count, so a row's result
/// never depends on the rows beside it. Used only without autograd.
/// </remarks>
internal static unsafe class CpuSwiGlu
{
    /// <summary>
    /// Whether <see cref="Apply"/> applies: CPU, no autograd, fp32 or bf16, the same shape and dtype, contiguous, and at most
    /// <see cref="ManagedKernels.MaxRows"/> rows unless <paramref name="rowInvariant"/> (then any number, so that no row
    /// count switches to libtorch's arithmetic).
    /// </summary>
    public static bool Applies(Tensor gate, Tensor up, bool rowInvariant) =>
        ManagedKernels.Usable(gate, up)
        && gate.dtype is ScalarType.Float32 or ScalarType.BFloat16 && up.dtype == gate.dtype && TensorShapes.Same(gate, up)
        && gate.is_contiguous() && up.is_contiguous() && gate.numel() > 0 && gate.numel() < int.MaxValue
        && (rowInvariant || gate.numel() / gate.size(-1) <= ManagedKernels.MaxRows);

    /// <summary>gate and up [..., I] -> silu(gate)·up [..., I] in their dtype.</summary>
    public static Tensor Apply(Tensor gate, Tensor up)
    {
        var width = (int)gate.size(-1);
        var rows = gate.numel() / width;
        var output = empty(TensorShapes.Of(gate), gate.dtype);
        var g = Unsafe.AsPointer(ref gate.bytes.GetPinnableReference());
        var u = Unsafe.AsPointer(ref up.bytes.GetPinnableReference());
        var y = Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var isBf16 = gate.dtype == ScalarType.BFloat16;
        for (long r = 0; r < rows; r++)
        {
            var offset = r * width;
            if (isBf16)
            {
                Row<Bf16Elements>((ushort*)g + offset, (ushort*)u + offset, (ushort*)y + offset, width);
            }
            else
            {
                Row<F32Elements>((float*)g + offset, (float*)u + offset, (float*)y + offset, width);
            }
        }

        return output;
    }

    /// <summary>
    /// One row: eight lanes at a time with the vector exp, then the tail with the scalar one. Per row, so that an
    /// element's lane never depends on the row count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Row<T>(void* gate, void* up, void* output, int width)
        where T : struct, IElements
    {
        var i = 0;
        for (; i + 8 <= width; i += 8)
        {
            var x = T.Load8(gate, i);
            var silu = x / (Vector256<float>.One + Vector256.Exp(-x));
            T.Store8(output, i, T.Round8(silu) * T.Load8(up, i)); // each lane as the scalar tail computes it
        }

        for (; i < width; i++)
        {
            var x = T.Load1(gate, i);
            T.Store1(output, i, T.Round(x / (1f + MathF.Exp(-x))) * T.Load1(up, i));
        }
    }
}
