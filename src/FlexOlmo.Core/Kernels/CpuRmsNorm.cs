using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// M=rows, W=width

/// <summary>
/// RMSNorm of a few rows on the CPU, in one pass of managed code: the mean of squares in fp32, x·rsqrt(mean + eps) in
/// fp32, times the weight in fp32, then one rounding to the input's dtype, which is the order of operations of
/// <see cref="Modeling.Olmo2RmsNorm"/> (only the summation order of the mean differs from libtorch's).
/// </summary>
/// <remarks>
/// Written by hand because the same seven libtorch ops cost 15-25 us at one row (measured here), four times per layer
/// of a decode step, where the arithmetic is a few hundred nanoseconds. Each row is computed on its own, so a row's
/// result never depends on the rows beside it. Used only without autograd.
/// </remarks>
internal static unsafe class CpuRmsNorm
{
    /// <summary>
    /// Whether <see cref="Apply"/> applies: one token per row (a decode step, whatever its batch, so that no batch size
    /// switches a decoding row's arithmetic) or at most <see cref="ManagedKernels.MaxRows"/> rows; fp32 or bf16 with a
    /// weight of the same dtype and width; contiguous.
    /// </summary>
    public static bool Applies(Tensor input, Tensor weight)
    {
        if (!ManagedKernels.Usable(input, weight))
        {
            return false;
        }

        var width = input.size(-1);
        var oneTokenPerRow = input.dim() >= 3 && input.size(-2) == 1;
        return (oneTokenPerRow || input.numel() / Math.Max(1, width) <= ManagedKernels.MaxRows)
            && input.numel() > 0 && input.numel() < int.MaxValue && weight.dim() == 1 && weight.size(0) == width
            && input.dtype is ScalarType.Float32 or ScalarType.BFloat16 && weight.dtype == input.dtype
            && input.is_contiguous() && weight.is_contiguous();
    }

    /// <summary>x [..., W] -> [..., W] in x's dtype.</summary>
    public static Tensor Apply(Tensor input, Tensor weight, double eps)
    {
        var width = (int)input.size(-1);
        var rows = (int)(input.numel() / width);
        var output = empty(TensorShapes.Of(input), input.dtype);
        var x = Unsafe.AsPointer(ref input.bytes.GetPinnableReference());
        var w = Unsafe.AsPointer(ref weight.bytes.GetPinnableReference());
        var y = Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var epsilon = (float)eps;
        var isBf16 = input.dtype == ScalarType.BFloat16;
        for (var r = 0; r < rows; r++)
        {
            var offset = (long)r * width;
            if (isBf16)
            {
                Row<Bf16Elements>((ushort*)x + offset, w, (ushort*)y + offset, width, epsilon);
            }
            else
            {
                Row<F32Elements>((float*)x + offset, w, (float*)y + offset, width, epsilon);
            }
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row<T>(void* x, void* w, void* y, int width, float eps)
        where T : struct, IElements
    {
        var squares = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= width; i += 8)
        {
            var v = T.Load8(x, i);
            squares += v * v; // separate multiply and add, as pow(2) then mean
        }

        var sum = Vector256.Sum(squares);
        for (; i < width; i++)
        {
            var v = T.Load1(x, i);
            sum += v * v;
        }

        var scale = 1f / MathF.Sqrt((sum / width) + eps);
        var scales = Vector256.Create(scale);
        for (i = 0; i + 8 <= width; i += 8)
        {
            T.Store8(y, i, T.Load8(w, i) * (T.Load8(x, i) * scales)); // each lane as the scalar tail computes it
        }

        for (; i < width; i++)
        {
            T.Store1(y, i, T.Load1(w, i) * (T.Load1(x, i) * scale));
        }
    }
}
