using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FlexOlmo.Core.Kernels;

// M=input rows, K=in features, O=out features

/// <summary>
/// Input rows with AVX-512: tiles of four weight rows by four input rows, sixteen accumulators, so that each
/// weight block is loaded (and, for bf16, widened) once for four inputs and each input block once for four weight
/// rows: a quarter of the loads per multiply-add of the AVX2 path, which is load-bound from two rows on. A tile's four
/// weight rows lie a quarter of the task apart, so a task reads four long sequential streams: on a 2-core Xeon, four
/// neighbouring rows (short streams that restart every tile) read 64 cold [2816, 1024] weights at 18-20 GB/s in bf16
/// at 1-4 input rows, the four quarters at 23-28 (fp32: 25-28 and 25-31; a plain sum of four streams, 29-30).
/// The one to three input rows left over after the fours take one tile of four weight rows by that many input rows.
/// </summary>
/// <remarks>
/// Bit for bit the arithmetic of the AVX2 path: a 16-lane accumulator over blocks of 16 holds, in its lower and
/// upper halves, exactly the two 8-lane chains of <see cref="Dot1{T}"/> (even and odd blocks of 8), and the result is the
/// horizontal sum of their sum, then the same scalar tail. So outputs never depend on which path, tile or row
/// count computed them.
/// </remarks>
internal static unsafe partial class CpuGemv
{
    /// <summary>
    /// How far ahead, in bytes, each of a tile's four weight streams is prefetched into L1 (<c>prefetcht0</c>) while the
    /// tile computes: 2 KB, a row or less. Only the first group of input rows over a block prefetches (the others find
    /// the block in L2). On a 2-core Zen 5 EPYC, per decode step alternating in one run of the decode benchmark, against
    /// the four rows ahead into L2 (<c>prefetcht1</c>) that the tiles of four rows made before: bf16 batch 1 9.0 against
    /// 13.1 ms a step, batch 16 49.7 against 62.0; fp32 21.4 against 23.3 and 80.5 against 93.4. A probe of the benchmark's
    /// cold experts at 16 tokens (1.1 GB of bf16, alternating in one process): into L2 at any distance 0.99-1.06x the time
    /// of no prefetch at all, into L1 at 4 or 8 KB 0.93x, at 2 KB 0.85-0.87x, at 1 KB 0.92x, at 512 bytes 0.98x; the
    /// tiles of one to three rows prefetching too, 0.83x that again (fp32 0.94 and 0.96x).
    /// </summary>
    private const int PrefetchBytes = 2048;

    /// <summary>
    /// Whether the tiles compute every call, one row included. One row takes four weight rows at a time: on a 2-core
    /// Xeon with AMX (measured on 64 cold [2816, 1024] weights) the AVX2 row-at-a-time path
    /// streamed fp32 at 17-18 GB/s and bf16 at 13-16, the tiles at 24-29 and 18-21 (libtorch's fp32 product: 25).
    /// </summary>
    internal static bool UsesAvx512 => Avx512F.IsSupported;

    /// <summary>
    /// How many tiles (four weight rows each) every group of four input rows goes over before the next group takes them:
    /// the block stays in L2 (128-352 KB in bf16 at the decode benchmark's sizes, twice that in fp32) while the group's
    /// input rows stay in L1, which sixteen rows of 1024 or more fp32 features do not. Up to four rows, the order of work
    /// is the plain one. On a 2-core Zen 5 EPYC, one thread at 16 input rows over 256 KB or 2 MB of bf16 weights read
    /// again and again: 180-187 GFLOP/s against 142-168 with each tile taking every group in turn at 1024 features,
    /// 172-191 against 137-167 at 2816 (with groups of eight rows, blocks of 16-64 tiles were alike and 8 a little
    /// slower). Over the decode benchmark's cold experts, two threads: 0.87x the time at about 16 rows per expert, 0.94x
    /// at 8, 0.95-0.99x at 4.
    /// </summary>
    private const int TileBlock = 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block512<T>(nint w, float* x, float* y, int k, int o, int first, int last, int rows)
        where T : struct, IWideWeights
    {
        var stride = (nint)k * T.ElementSize;
        var span = (last - first) / 4; // a tile's four weight rows lie this many rows apart: four long sequential streams
        var gap = span * stride;
        for (var r0 = first; r0 < first + span; r0 += TileBlock)
        {
            var r1 = Math.Min(first + span, r0 + TileBlock);
            for (var m = 0; m < rows; m += 4)
            {
                var xs = x + ((long)m * k); // up to four input rows: in L1 while they go over this block of tiles
                var ys = y + ((long)m * o);
                var count = Math.Min(4, rows - m);
                for (var row = r0; row < r1; row++)
                {
                    var w0 = w + (row * stride);
                    var ahead = m == 0 ? w0 + PrefetchBytes : 0; // each stream PrefetchBytes on, read while this tile computes; later groups find the block in L2
                    switch (count)
                    {
                        case 4:
                            Tile4x4<T>(w0, gap, xs, k, ys + row, span, o, ahead);
                            break;
                        case 3:
                            Tile4x3<T>(w0, gap, xs, k, ys + row, span, o, ahead);
                            break;
                        case 2:
                            Tile4x2<T>(w0, gap, xs, k, ys + row, span, o, ahead);
                            break;
                        default:
                            Tile4x1<T>(w0, gap, xs, k, ys + row, span, ahead);
                            break;
                    }
                }
            }
        }

        for (var row = first + (4 * span); row < last; row++)
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
    /// Weight rows w0, w0 + gap, w0 + 2 gap, w0 + 3 gap times input rows x..x+3k: y[j*o + c*span] for input j and weight
    /// row c. Where <paramref name="ahead"/> is not 0, the four streams are prefetched from there on as they are read
    /// (<see cref="PrefetchBytes"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x4<T>(nint w0, nint gap, float* x, int k, float* y, int span, int o, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + gap;
        var w2 = w1 + gap;
        var w3 = w2 + gap;
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
                Prefetch(ahead, gap, i * T.ElementSize);
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

        var (s1, s2, s3) = (span, 2 * span, 3 * span);
        y[0] = Finish<T>(a00, w0, x, i, k);
        y[s1] = Finish<T>(a10, w1, x, i, k);
        y[s2] = Finish<T>(a20, w2, x, i, k);
        y[s3] = Finish<T>(a30, w3, x, i, k);
        y[o] = Finish<T>(a01, w0, x1, i, k);
        y[o + s1] = Finish<T>(a11, w1, x1, i, k);
        y[o + s2] = Finish<T>(a21, w2, x1, i, k);
        y[o + s3] = Finish<T>(a31, w3, x1, i, k);
        y[2 * o] = Finish<T>(a02, w0, x2, i, k);
        y[(2 * o) + s1] = Finish<T>(a12, w1, x2, i, k);
        y[(2 * o) + s2] = Finish<T>(a22, w2, x2, i, k);
        y[(2 * o) + s3] = Finish<T>(a32, w3, x2, i, k);
        y[3 * o] = Finish<T>(a03, w0, x3, i, k);
        y[(3 * o) + s1] = Finish<T>(a13, w1, x3, i, k);
        y[(3 * o) + s2] = Finish<T>(a23, w2, x3, i, k);
        y[(3 * o) + s3] = Finish<T>(a33, w3, x3, i, k);
    }

    /// <summary>
    /// Four weight rows times three input rows: the last three of a call's rows, with the arithmetic of
    /// <see cref="Tile4x4{T}"/> for each. Each weight block is widened once for the three, not once per row as three
    /// one-row tiles would: at a decode batch of 16 with top-2 of 8, most experts get 2-7 rows. On a 2-core Zen 5 EPYC
    /// (one thread, 256 KB of bf16 weights in cache) three rows ran at 175-182 GFLOP/s where three one-row tiles ran
    /// 100-103. Prefetches as <see cref="Tile4x4{T}"/> does.
    /// </summary>
    /// <remarks>
    /// Written out like the other tiles rather than one tile generic in its row count: the JIT keeps accumulators in
    /// registers only as separate locals, and does not unroll a loop over them.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x3<T>(nint w0, nint gap, float* x, int k, float* y, int span, int o, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + gap;
        var w2 = w1 + gap;
        var w3 = w2 + gap;
        var x1 = x + k;
        var x2 = x1 + k;
        Vector512<float> a00 = default, a01 = default, a02 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (ahead != 0)
            {
                Prefetch(ahead, gap, i * T.ElementSize);
            }

            var v0 = Vector512.Load(x + i);
            var v1 = Vector512.Load(x1 + i);
            var v2 = Vector512.Load(x2 + i);
            var u = T.Load16(w0, i);
            a00 = Avx512F.FusedMultiplyAdd(u, v0, a00);
            a01 = Avx512F.FusedMultiplyAdd(u, v1, a01);
            a02 = Avx512F.FusedMultiplyAdd(u, v2, a02);
            u = T.Load16(w1, i);
            a10 = Avx512F.FusedMultiplyAdd(u, v0, a10);
            a11 = Avx512F.FusedMultiplyAdd(u, v1, a11);
            a12 = Avx512F.FusedMultiplyAdd(u, v2, a12);
            u = T.Load16(w2, i);
            a20 = Avx512F.FusedMultiplyAdd(u, v0, a20);
            a21 = Avx512F.FusedMultiplyAdd(u, v1, a21);
            a22 = Avx512F.FusedMultiplyAdd(u, v2, a22);
            u = T.Load16(w3, i);
            a30 = Avx512F.FusedMultiplyAdd(u, v0, a30);
            a31 = Avx512F.FusedMultiplyAdd(u, v1, a31);
            a32 = Avx512F.FusedMultiplyAdd(u, v2, a32);
        }

        var (s1, s2, s3) = (span, 2 * span, 3 * span);
        y[0] = Finish<T>(a00, w0, x, i, k);
        y[s1] = Finish<T>(a10, w1, x, i, k);
        y[s2] = Finish<T>(a20, w2, x, i, k);
        y[s3] = Finish<T>(a30, w3, x, i, k);
        y[o] = Finish<T>(a01, w0, x1, i, k);
        y[o + s1] = Finish<T>(a11, w1, x1, i, k);
        y[o + s2] = Finish<T>(a21, w2, x1, i, k);
        y[o + s3] = Finish<T>(a31, w3, x1, i, k);
        y[2 * o] = Finish<T>(a02, w0, x2, i, k);
        y[(2 * o) + s1] = Finish<T>(a12, w1, x2, i, k);
        y[(2 * o) + s2] = Finish<T>(a22, w2, x2, i, k);
        y[(2 * o) + s3] = Finish<T>(a32, w3, x2, i, k);
    }

    /// <summary>Four weight rows times two input rows, as <see cref="Tile4x3{T}"/> (two rows: 161-162 GFLOP/s where two one-row tiles ran 100-103).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x2<T>(nint w0, nint gap, float* x, int k, float* y, int span, int o, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + gap;
        var w2 = w1 + gap;
        var w3 = w2 + gap;
        var x1 = x + k;
        Vector512<float> a00 = default, a01 = default;
        Vector512<float> a10 = default, a11 = default;
        Vector512<float> a20 = default, a21 = default;
        Vector512<float> a30 = default, a31 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (ahead != 0)
            {
                Prefetch(ahead, gap, i * T.ElementSize);
            }

            var v0 = Vector512.Load(x + i);
            var v1 = Vector512.Load(x1 + i);
            var u = T.Load16(w0, i);
            a00 = Avx512F.FusedMultiplyAdd(u, v0, a00);
            a01 = Avx512F.FusedMultiplyAdd(u, v1, a01);
            u = T.Load16(w1, i);
            a10 = Avx512F.FusedMultiplyAdd(u, v0, a10);
            a11 = Avx512F.FusedMultiplyAdd(u, v1, a11);
            u = T.Load16(w2, i);
            a20 = Avx512F.FusedMultiplyAdd(u, v0, a20);
            a21 = Avx512F.FusedMultiplyAdd(u, v1, a21);
            u = T.Load16(w3, i);
            a30 = Avx512F.FusedMultiplyAdd(u, v0, a30);
            a31 = Avx512F.FusedMultiplyAdd(u, v1, a31);
        }

        var (s1, s2, s3) = (span, 2 * span, 3 * span);
        y[0] = Finish<T>(a00, w0, x, i, k);
        y[s1] = Finish<T>(a10, w1, x, i, k);
        y[s2] = Finish<T>(a20, w2, x, i, k);
        y[s3] = Finish<T>(a30, w3, x, i, k);
        y[o] = Finish<T>(a01, w0, x1, i, k);
        y[o + s1] = Finish<T>(a11, w1, x1, i, k);
        y[o + s2] = Finish<T>(a21, w2, x1, i, k);
        y[o + s3] = Finish<T>(a31, w3, x1, i, k);
    }

    /// <summary>
    /// Four weight rows, <paramref name="gap"/> bytes apart, times one input row; prefetches as <see cref="Tile4x4{T}"/>
    /// does. The prefetch into L2 four rows ahead that the tiles of four rows made before cost the one-row tiles (on a
    /// 2-core Zen 5 EPYC, 894 MB of bf16 weights streamed at 49 GB/s with it and 54 without); into L1 2 KB ahead, the
    /// decode benchmark's batch-1 step took 0.69x the time in bf16 and 0.92x in fp32, per step alternating in one run
    /// (see <see cref="PrefetchBytes"/>). In three runs alternating with the build before, bf16 steps took 8.8-9.6 ms
    /// against 11.2-13.1 and fp32 steps were no faster (19.7-19.9 against 17.9-21.1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x1<T>(nint w0, nint gap, float* x, int k, float* y, int span, nint ahead)
        where T : struct, IWideWeights
    {
        var w1 = w0 + gap;
        var w2 = w1 + gap;
        var w3 = w2 + gap;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            if (ahead != 0)
            {
                Prefetch(ahead, gap, i * T.ElementSize);
            }

            var v = Vector512.Load(x + i);
            a0 = Avx512F.FusedMultiplyAdd(T.Load16(w0, i), v, a0);
            a1 = Avx512F.FusedMultiplyAdd(T.Load16(w1, i), v, a1);
            a2 = Avx512F.FusedMultiplyAdd(T.Load16(w2, i), v, a2);
            a3 = Avx512F.FusedMultiplyAdd(T.Load16(w3, i), v, a3);
        }

        y[0] = Finish<T>(a0, w0, x, i, k);
        y[span] = Finish<T>(a1, w1, x, i, k);
        y[2 * span] = Finish<T>(a2, w2, x, i, k);
        y[3 * span] = Finish<T>(a3, w3, x, i, k);
    }

    /// <summary>Into L1 (a prefetch never faults, so past the end of the weight is harmless): four streams, <paramref name="gap"/> bytes apart, at one byte offset.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(nint ahead, nint gap, nint offset)
    {
        var at = (byte*)(ahead + offset);
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + gap);
        Sse.Prefetch0(at + (2 * gap));
        Sse.Prefetch0(at + (3 * gap));
    }

    /// <summary>The AVX2 path's ending (<see cref="Tail{T}"/>) for a 16-lane accumulator: its lower half is the even chain, its upper the odd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish<T>(Vector512<float> accumulator, nint w, float* x, int i, int k)
        where T : struct, IWideWeights =>
        Tail<T>(accumulator.GetLower() + accumulator.GetUpper(), w, x, i, k);
}
