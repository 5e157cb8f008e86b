using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FlexOlmo.Core.Kernels;

// M=input rows, K=in features, O=out features

/// <summary>
/// Several input rows with AVX-512: tiles of four weight rows by four input rows, sixteen accumulators, so that each
/// weight block is loaded (and, for bf16, widened) once for four inputs and each input block once for four weight
/// rows: a quarter of the loads per multiply-add of the AVX2 path, which is load-bound from two rows on.
/// </summary>
/// <remarks>
/// Bit for bit the arithmetic of the AVX2 path: a 16-lane accumulator over blocks of 16 holds, in its lower and
/// upper halves, exactly the two 8-lane chains of <c>F32Dot1</c> (even and odd blocks of 8), and the result is the
/// horizontal sum of their sum, then the same scalar tail. So outputs never depend on which path, tile or row
/// count computed them.
/// </remarks>
internal static unsafe partial class CpuGemv
{
    /// <summary>
    /// How far ahead a tile prefetches its weights: the same columns eight rows (two tiles) on. On this 2-core EPYC the
    /// tiles' reads and arithmetic otherwise add up instead of overlapping: measured on 1.1 GB of cold fp32 weights,
    /// 4 input rows streamed 22-23 GB/s without it and 28-29 with it (a plain sum: 31), 8 rows 19 and 23. Into L1, or
    /// less than a tile ahead, gained at most 10% (the previous attempts).
    /// </summary>
    private const int PrefetchRows = 8;

    private static bool UsesAvx512(int rows) => rows > 1 && Avx512F.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block512<T>(nint w, float* x, float* y, int k, int o, int first, int last, int rows)
        where T : struct, IWideWeights
    {
        var stride = (nint)k * T.ElementSize;
        var row = first;
        for (; row + 4 <= last; row += 4)
        {
            var w0 = w + (row * stride);
            var ahead = w0 + (PrefetchRows * stride); // the same columns two tiles on: read while this tile computes
            var m = 0;
            for (; m + 4 <= rows; m += 4)
            {
                Tile4x4<T>(w0, stride, x + ((long)m * k), k, y + ((long)m * o) + row, o, m == 0 ? ahead : 0);
            }

            for (; m < rows; m++)
            {
                Tile4x1<T>(w0, stride, x + ((long)m * k), k, y + ((long)m * o) + row, m == 0 ? ahead : 0);
            }
        }

        for (; row < last; row++)
        {
            var wRow = w + (row * stride);
            for (var m = 0; m < rows; m++)
            {
                var xRow = x + ((long)m * k);
                var a = Vector512<float>.Zero;
                var i = 0;
                for (; i + 16 <= k; i += 16)
                {
                    a = Avx512F.FusedMultiplyAdd(T.Load16(wRow, i), Vector512.Load(xRow + i), a);
                }

                y[((long)m * o) + row] = Finish<T>(a, wRow, xRow, i, k);
            }
        }
    }

    /// <summary>
    /// Weight rows w0..w0+3*stride times input rows x..x+3k: y[j*o + r] for input j and weight row r. Where
    /// <paramref name="ahead"/> is not 0, the same columns of the four rows there are prefetched into L2 as these are read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x4<T>(nint w0, nint stride, float* x, int k, float* y, int o, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + stride;
        var w2 = w1 + stride;
        var w3 = w2 + stride;
        var x1 = x + k;
        var x2 = x1 + k;
        var x3 = x2 + k;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (ahead != 0)
            {
                Prefetch(ahead, stride, i * T.ElementSize);
            }

            var v0 = Vector512.Load(x + i);
            var v1 = Vector512.Load(x1 + i);
            var v2 = Vector512.Load(x2 + i);
            var v3 = Vector512.Load(x3 + i);
            var u = T.Load16(w0, i);
            a00 = Avx512F.FusedMultiplyAdd(u, v0, a00);
            a01 = Avx512F.FusedMultiplyAdd(u, v1, a01);
            a02 = Avx512F.FusedMultiplyAdd(u, v2, a02);
            a03 = Avx512F.FusedMultiplyAdd(u, v3, a03);
            u = T.Load16(w1, i);
            a10 = Avx512F.FusedMultiplyAdd(u, v0, a10);
            a11 = Avx512F.FusedMultiplyAdd(u, v1, a11);
            a12 = Avx512F.FusedMultiplyAdd(u, v2, a12);
            a13 = Avx512F.FusedMultiplyAdd(u, v3, a13);
            u = T.Load16(w2, i);
            a20 = Avx512F.FusedMultiplyAdd(u, v0, a20);
            a21 = Avx512F.FusedMultiplyAdd(u, v1, a21);
            a22 = Avx512F.FusedMultiplyAdd(u, v2, a22);
            a23 = Avx512F.FusedMultiplyAdd(u, v3, a23);
            u = T.Load16(w3, i);
            a30 = Avx512F.FusedMultiplyAdd(u, v0, a30);
            a31 = Avx512F.FusedMultiplyAdd(u, v1, a31);
            a32 = Avx512F.FusedMultiplyAdd(u, v2, a32);
            a33 = Avx512F.FusedMultiplyAdd(u, v3, a33);
        }

        y[0] = Finish<T>(a00, w0, x, i, k);
        y[1] = Finish<T>(a10, w1, x, i, k);
        y[2] = Finish<T>(a20, w2, x, i, k);
        y[3] = Finish<T>(a30, w3, x, i, k);
        y[o] = Finish<T>(a01, w0, x1, i, k);
        y[o + 1] = Finish<T>(a11, w1, x1, i, k);
        y[o + 2] = Finish<T>(a21, w2, x1, i, k);
        y[o + 3] = Finish<T>(a31, w3, x1, i, k);
        y[2 * o] = Finish<T>(a02, w0, x2, i, k);
        y[(2 * o) + 1] = Finish<T>(a12, w1, x2, i, k);
        y[(2 * o) + 2] = Finish<T>(a22, w2, x2, i, k);
        y[(2 * o) + 3] = Finish<T>(a32, w3, x2, i, k);
        y[3 * o] = Finish<T>(a03, w0, x3, i, k);
        y[(3 * o) + 1] = Finish<T>(a13, w1, x3, i, k);
        y[(3 * o) + 2] = Finish<T>(a23, w2, x3, i, k);
        y[(3 * o) + 3] = Finish<T>(a33, w3, x3, i, k);
    }

    /// <summary>Four weight rows times one input row, prefetching as <see cref="Tile4x4{T}"/> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x1<T>(nint w0, nint stride, float* x, int k, float* y, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + stride;
        var w2 = w1 + stride;
        var w3 = w2 + stride;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (ahead != 0)
            {
                Prefetch(ahead, stride, i * T.ElementSize);
            }

            var v = Vector512.Load(x + i);
            a0 = Avx512F.FusedMultiplyAdd(T.Load16(w0, i), v, a0);
            a1 = Avx512F.FusedMultiplyAdd(T.Load16(w1, i), v, a1);
            a2 = Avx512F.FusedMultiplyAdd(T.Load16(w2, i), v, a2);
            a3 = Avx512F.FusedMultiplyAdd(T.Load16(w3, i), v, a3);
        }

        y[0] = Finish<T>(a0, w0, x, i, k);
        y[1] = Finish<T>(a1, w1, x, i, k);
        y[2] = Finish<T>(a2, w2, x, i, k);
        y[3] = Finish<T>(a3, w3, x, i, k);
    }

    /// <summary>Into L2 (a prefetch never faults, so past the end of the weight is harmless): four rows at one byte offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(nint ahead, nint stride, nint offset)
    {
        var at = (byte*)(ahead + offset);
        Sse.Prefetch1(at);
        Sse.Prefetch1(at + stride);
        Sse.Prefetch1(at + (2 * stride));
        Sse.Prefetch1(at + (3 * stride));
    }

    /// <summary>The AVX2 path's ending: the horizontal sum of (even chain + odd chain), then the scalar tail from <paramref name="i"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish<T>(Vector512<float> accumulator, nint w, float* x, int i, int k)
        where T : struct, IWideWeights
    {
        var sum = Vector256.Sum(accumulator.GetLower() + accumulator.GetUpper());
        for (; i < k; i++)
        {
            sum += T.Load1(w, i) * x[i];
        }

        return sum;
    }

    /// <summary>How sixteen weights become fp32: one implementation per storage dtype, specialised by the JIT.</summary>
    private interface IWideWeights
    {
        static abstract int ElementSize { get; }

        static abstract Vector512<float> Load16(nint row, int i);

        static abstract float Load1(nint row, int i);
    }

    private readonly struct F32Wide : IWideWeights
    {
        public static int ElementSize => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint row, int i) => Vector512.Load((float*)row + i);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load1(nint row, int i) => ((float*)row)[i];
    }

    private readonly struct Bf16Wide : IWideWeights
    {
        public static int ElementSize => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint row, int i) =>
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load((short*)row + i)), 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load1(nint row, int i) => Bf16(((ushort*)row)[i]);
    }
}
