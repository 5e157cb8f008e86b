using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// M=rows, W=width

/// <summary>
/// RMSNorm on the CPU, in one pass of managed code per row: the mean of squares in fp32, x·rsqrt(mean + eps) in fp32,
/// times the weight in fp32, then one rounding to the input's dtype, which is the order of operations of
/// <see cref="Modeling.Olmo2RmsNorm"/> (only the summation order of the mean differs from libtorch's).
/// </summary>
/// <remarks>
/// Written by hand because the same seven libtorch ops cost 15-25 us at one row (measured here), four times per layer
/// of a decode step, where the arithmetic is a few hundred nanoseconds; and at a prefill's size they write four
/// intermediate tensors of the whole input, fp32 ones among them. Each row is computed on its own, so a row's result
/// never depends on the rows beside it: a prompt's norms are decoding's. Rows are split over the cores from
/// <see cref="ParallelElements"/> elements on. Used only without autograd. In the forward benchmark's 512-token bf16
/// forward (33 norms), against libtorch's ops for more than 16 rows: a paired median of 0.855x the forward's time over
/// 30 alternating forwards (563 ms against 679), its page faults 2.3K against 9.3K; fp32 1.00x (20 forwards).
/// </remarks>
internal static unsafe class CpuRmsNorm
{
    /// <summary>Elements from which the rows are split over the cores; a decode step's few rows stay on one.</summary>
    private const long ParallelElements = 1L << 16;

    /// <summary>
    /// Whether <see cref="Apply"/> applies: any number of rows, fp32 or bf16 with a weight of the same dtype and width,
    /// contiguous.
    /// </summary>
    public static bool Applies(Tensor input, Tensor weight)
    {
        if (!ManagedKernels.Usable(input, weight))
        {
            return false;
        }

        var width = input.size(-1);
        return input.numel() > 0 && input.numel() < int.MaxValue && weight.dim() == 1 && weight.size(0) == width
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
        var (inputAddress, weightAddress, outputAddress) = ((nint)x, (nint)w, (nint)y);

        void Rows(int from, int to)
        {
            for (var r = from; r < to; r++)
            {
                var offset = (long)r * width;
                if (isBf16)
                {
                    Row<Bf16Elements>((ushort*)inputAddress + offset, (void*)weightAddress, (ushort*)outputAddress + offset, width, epsilon);
                }
                else
                {
                    Row<F32Elements>((float*)inputAddress + offset, (void*)weightAddress, (float*)outputAddress + offset, width, epsilon);
                }
            }
        }

        KernelThreads.ForRanges(rows, input.numel() >= ParallelElements ? get_num_threads() : 1, 8, Rows);

        GC.KeepAlive(input);
        GC.KeepAlive(weight);
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
