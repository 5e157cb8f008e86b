using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, N=heads, T=tokens, D=head dim

/// <summary>
/// RoPE on the CPU, in managed code: x·cos + rotate_half(x)·sin with each product and the sum rounded to fp32 in turn
/// and one rounding to x's dtype at the end, the same operations, in the same order, as
/// <see cref="Modeling.Olmo2RotaryEmbedding.Apply"/>'s libtorch ops, so the result is bit for bit theirs.
/// </summary>
/// <remarks>
/// Written by hand because those ten libtorch ops (narrows, neg, cat, two products, a sum, a cast) cost 15-25 us at one
/// token (measured here), twice per layer of a decode step. A prefill's heads view (strided) costs them more still: one
/// layer's bf16 queries of 512 tokens (16 heads of 64) on a 2-core Zen 5 EPYC, medians of 60 alternating calls, took
/// 0.85 ms on one thread and 17 ms on two, against 0.44 and 0.62 ms here; fp32 0.39 and 0.66 against 0.24 and 0.47.
/// Within the forward benchmark's bf16 forward (16 calls), a median of 4.9 ms against 23.9 (30 alternating forwards).
/// C# never contracts a*b + c*d into a fused multiply-add, which is what keeps the roundings libtorch's. Used only
/// without autograd.
/// </remarks>
internal static unsafe class CpuRotary
{
    /// <summary>Elements from which the rows are split over the cores; a decode step's few heads stay on one.</summary>
    private const long ParallelElements = 1L << 16;

    /// <summary>
    /// Whether <see cref="Apply"/> applies: x [B, N, T, D] in fp32 or bf16, dense with its head dim contiguous (a view
    /// with the heads and tokens in any order, as a projection's output split into heads is), D even, and cos and sin
    /// [B, T, D] contiguous fp32.
    /// </summary>
    public static bool Applies(Tensor x, Tensor cos, Tensor sin) =>
        ManagedKernels.Usable(x, cos) && sin.device_type == TorchSharp.DeviceType.CPU
        && x.dim() == 4 && x.size(3) % 2 == 0 && x.numel() > 0 && x.numel() < int.MaxValue && x.stride(3) == 1 && ManagedKernels.IsDense(x)
        && x.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && cos.dtype == ScalarType.Float32 && sin.dtype == ScalarType.Float32 && cos.is_contiguous() && sin.is_contiguous()
        && cos.dim() == 3 && cos.size(0) == x.size(0) && cos.size(1) == x.size(2) && cos.size(2) == x.size(3) && TensorShapes.Same(sin, cos);

    /// <summary>x [B, N, T, D] rotated by cos/sin [B, T, D] fp32 -> [B, N, T, D] in x's dtype, laid out as x is.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var (batch, heads, tokens, dim) = ((int)x.size(0), (int)x.size(1), (int)x.size(2), (int)x.size(3));
        var strides = ManagedKernels.Strides(x);
        var output = empty_strided(TensorShapes.Of(x), strides, x.dtype); // [B, N, T, D], laid out as x (libtorch's ops give the same), so one offset serves both
        var input = ManagedKernels.Address(x);
        var result = ManagedKernels.Address(output);
        var c = CpuGemv.Address(cos);
        var s = CpuGemv.Address(sin);
        var isBf16 = x.dtype == ScalarType.BFloat16;
        var rows = batch * heads * tokens;

        void Row(int row)
        {
            var t = row % tokens;
            var n = row / tokens % heads;
            var b = row / tokens / heads;
            var at = (b * strides[0]) + (n * strides[1]) + (t * strides[2]);
            var angles = (((long)b * tokens) + t) * dim;
            if (isBf16)
            {
                Head<Bf16Elements>((ushort*)input + at, (ushort*)result + at, (float*)c + angles, (float*)s + angles, dim);
            }
            else
            {
                Head<F32Elements>((float*)input + at, (float*)result + at, (float*)c + angles, (float*)s + angles, dim);
            }
        }

        KernelThreads.ForRanges(rows, x.numel() >= ParallelElements ? get_num_threads() : 1, 8, (from, to) =>
        {
            for (var row = from; row < to; row++)
            {
                Row(row);
            }
        });

        GC.KeepAlive(x);
        GC.KeepAlive(cos);
        GC.KeepAlive(sin);
        return output;
    }

    /// <summary>
    /// One head's D values: element d and d + D/2 together, eight lanes at a time where D/2 allows, each lane with the
    /// very operations of the scalar tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Head<T>(void* x, void* y, float* c, float* s, int dim)
        where T : struct, IElements
    {
        var half = dim / 2;
        var d = 0;
        for (; d + 8 <= half; d += 8)
        {
            var low = T.Load8(x, d);
            var high = T.Load8(x, d + half);
            T.Store8(y, d, (low * Vector256.Load(c + d)) + (-high * Vector256.Load(s + d)));
            T.Store8(y, d + half, (high * Vector256.Load(c + d + half)) + (low * Vector256.Load(s + d + half)));
        }

        for (; d < half; d++)
        {
            var low = T.Load1(x, d);
            var high = T.Load1(x, d + half);
            T.Store1(y, d, (low * c[d]) + (-high * s[d]));
            T.Store1(y, d + half, (high * c[d + half]) + (low * s[d + half]));
        }
    }
}
