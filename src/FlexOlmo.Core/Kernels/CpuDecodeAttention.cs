using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, N=query heads, K=kv heads, S=keys, D=head dim

/// <summary>
/// Attention of one new token per row over its cached keys, on the CPU, for decode steps: per row and query head, the
/// scores q.k/sqrt(D) in fp32, their softmax, and the softmax-weighted sum of the values, all accumulated in fp32.
/// </summary>
/// <remarks>
/// Written by hand because libtorch's CPU scaled_dot_product_attention costs 30-45 us per call at one query (its
/// blocked flash kernel allocates and parallelises for a few hundred FLOPs), and, measured on this machine in a decode
/// step whose weight streaming evicts its code and data between layers, about 0.2 ms of each layer's 0.45 ms outside
/// the matrix products. Each row and head is computed on its own, so a row's result never depends on the rows beside
/// it. Used only without autograd, without a mask (no left padding) and for one query token.
/// </remarks>
internal static unsafe class CpuDecodeAttention
{
    /// <summary>Work (B·N·S·D) from which the heads are split over the cores; below it, one core is faster than waking another.</summary>
    private const long ParallelWork = 1L << 20;

    /// <summary>
    /// Whether <see cref="Attend"/> applies: CPU, no autograd, one query token, fp32 or bf16, head dim a multiple of 8, and
    /// contiguous cache buffers holding at least <paramref name="length"/> keys.
    /// </summary>
    public static bool Applies(Tensor query, Tensor keys, Tensor values, long length) =>
        ManagedKernels.Usable(query, keys) && values.device_type == TorchSharp.DeviceType.CPU
        && query.dim() == 4 && keys.dim() == 4 && query.size(2) == 1 && query.size(3) % 8 == 0 && query.size(3) == keys.size(3)
        && query.size(0) == keys.size(0) && keys.size(1) > 0 && query.size(1) % keys.size(1) == 0
        && query.dtype is ScalarType.Float32 or ScalarType.BFloat16 && keys.dtype == query.dtype && values.dtype == query.dtype
        && keys.is_contiguous() && values.is_contiguous() && TensorShapes.Same(values, keys)
        && length > 0 && length <= keys.size(2) && length <= int.MaxValue / 2;

    /// <summary>
    /// query [B, N, 1, D] over the first <paramref name="length"/> positions of the cache buffers keys and values
    /// [B, K, C, D] -> [B, N, 1, D] in the query's dtype.
    /// </summary>
    public static Tensor Attend(Tensor query, Tensor keys, Tensor values, long length)
    {
        var batch = (int)query.size(0);
        var heads = (int)query.size(1);
        var dim = (int)query.size(3);
        var kvHeads = (int)keys.size(1);
        var capacity = keys.size(2);
        var count = (int)length;
        var groups = heads / kvHeads;
        var scale = (float)(1.0 / Math.Sqrt(dim));
        using var q = query.to(ScalarType.Float32).contiguous(); // [B, N, 1, D] fp32
        var output = empty([batch, heads, 1, dim], ScalarType.Float32); // [B, N, 1, D]
        var isBf16 = keys.dtype == ScalarType.BFloat16;
        var elementSize = isBf16 ? 2 : 4;
        var qAddress = (nint)Unsafe.AsPointer(ref q.bytes.GetPinnableReference());
        var outAddress = (nint)Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var kAddress = (nint)Unsafe.AsPointer(ref keys.bytes.GetPinnableReference());
        var vAddress = (nint)Unsafe.AsPointer(ref values.bytes.GetPinnableReference());
        var headBytes = capacity * dim * elementSize; // one kv head's buffer
        var rowBytes = (nint)dim * elementSize;

        void Head(int task)
        {
            var b = task / heads;
            var n = task % heads;
            var g = n / groups;
            var offset = (nint)((((long)b * kvHeads) + g) * headBytes);
            var k = kAddress + offset;
            var v = vAddress + offset;
            var qRow = (float*)qAddress + ((long)task * dim);
            var outRow = (float*)outAddress + ((long)task * dim);
            Span<float> scores = count <= 4096 ? stackalloc float[count] : new float[count];
            fixed (float* s = scores)
            {
                if (isBf16)
                {
                    One<Bf16Elements>(qRow, k, v, rowBytes, count, dim, scale, s, outRow);
                }
                else
                {
                    One<F32Elements>(qRow, k, v, rowBytes, count, dim, scale, s, outRow);
                }
            }
        }

        var tasks = batch * heads;
        if ((long)tasks * count * dim >= ParallelWork && get_num_threads() > 1)
        {
            KernelThreads.For(tasks, get_num_threads(), Head);
        }
        else
        {
            for (var t = 0; t < tasks; t++)
            {
                Head(t);
            }
        }

        GC.KeepAlive(keys);
        GC.KeepAlive(values);
        return query.dtype == ScalarType.Float32 ? output : output.to(query.dtype);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void One<T>(float* q, nint k, nint v, nint rowBytes, int keys, int dim, float scale, float* scores, float* output)
        where T : struct, IElements
    {
        var max = float.NegativeInfinity;
        for (var s = 0; s < keys; s++)
        {
            var row = k + (s * rowBytes);
            var acc = Vector256<float>.Zero;
            for (var d = 0; d < dim; d += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + d), T.Load8((void*)row, d), acc);
            }

            var score = Vector256.Sum(acc) * scale;
            scores[s] = score;
            max = Math.Max(max, score);
        }

        var shift = Vector256.Create(max);
        var sums = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= keys; i += 8)
        {
            var e = Vector256.Exp(Vector256.Load(scores + i) - shift);
            Vector256.Store(e, scores + i);
            sums += e;
        }

        var total = Vector256.Sum(sums);
        for (; i < keys; i++)
        {
            var e = MathF.Exp(scores[i] - max);
            scores[i] = e;
            total += e;
        }

        for (var d = 0; d < dim; d += 8)
        {
            Vector256.Store(Vector256<float>.Zero, output + d);
        }

        for (var s = 0; s < keys; s++)
        {
            var row = v + (s * rowBytes);
            var p = Vector256.Create(scores[s]);
            for (var d = 0; d < dim; d += 8)
            {
                Vector256.Store(Vector256.FusedMultiplyAdd(p, T.Load8((void*)row, d), Vector256.Load(output + d)), output + d);
            }
        }

        var inverse = Vector256.Create(1f / total);
        for (var d = 0; d < dim; d += 8)
        {
            Vector256.Store(Vector256.Load(output + d) * inverse, output + d);
        }
    }
}
