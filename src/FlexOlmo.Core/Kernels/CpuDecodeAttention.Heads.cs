using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace FlexOlmo.Core.Kernels;

// D=head dim

/// <summary>
/// One head's arithmetic: a query over its keys and values. Every path computes the same numbers, whatever the
/// instruction set or the grouping of keys:
/// <list type="bullet">
/// <item>a score is two 8-lane chains of multiply-adds over the head dim, one over the even blocks of 8 and one over the
/// odd ones, added lane by lane, summed across the lanes as <see cref="Sum4"/> does, then times 1/sqrt(D);</item>
/// <item>the softmax is exp(score - max) (<see cref="PolynomialExp"/>), summed as <see cref="Exponentiate"/> does;</item>
/// <item>an output element is one chain of multiply-adds over the keys in order, times 1/sum.</item>
/// </list>
/// With AVX-512, one 16-lane chain holds both 8-lane chains (the even blocks in its lower half, the odd ones in its upper
/// half), and a 16-lane output block is sixteen output chains side by side.
/// </summary>
[SkipLocalsInit] // every stack buffer here is written before it is read; zeroing a prefill's score buffers cost time
internal static unsafe partial class CpuDecodeAttention
{

    /// <summary>
    /// Four 8-lane vectors' lane sums at once, each ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)):
    /// <see cref="Vector256.Sum{T}(Vector256{T})"/>'s additions in its order (horizontal adds pair the lanes the same way,
    /// and an addition of two floats is the same either way round); one call replaces four shuffle-and-add ladders.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var pairs = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d)); // per 128-bit half: a, b, c, d's (x0+x1)+(x2+x3), then (x4+x5)+(x6+x7) above
        return pairs.GetLower() + pairs.GetUpper();
    }

    /// <summary>Every cache line of <paramref name="bytes"/> from <paramref name="at"/>, into L1 or L2 (a prefetch never faults, so past the keys is harmless).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(nint at, nint bytes, bool toL1)
    {
        for (nint line = 0; line < bytes; line += 64)
        {
            if (toL1)
            {
                Sse.Prefetch0((void*)(at + line));
            }
            else
            {
                Sse.Prefetch1((void*)(at + line));
            }
        }
    }

    /// <summary>
    /// A score's two chains added, from a 16-lane chain over the head dim's full blocks of 16 (<paramref name="d"/> being
    /// where they end): the even chain takes the last block of 8 if one is left, then the odd chain is added.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Chains<T>(Vector512<float> chain, float* q, void* key, int d, int dim)
        where T : struct, IElements
    {
        var even = chain.GetLower();
        if (d < dim)
        {
            even = Vector256.FusedMultiplyAdd(Vector256.Load(q + d), T.Load8(key, d), even);
        }

        return even + chain.GetUpper();
    }

    /// <summary>One query's score of one key (the last keys, fewer than four), as every path computes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Score<T>(float* q, void* key, int dim, float scale)
        where T : struct, IElements
    {
        var d = 0;
        if (Avx512F.IsSupported)
        {
            var chain = Vector512<float>.Zero;
            for (; d + 16 <= dim; d += 16)
            {
                chain = Avx512F.FusedMultiplyAdd(Vector512.Load(q + d), T.Load16(key, d), chain);
            }

            return Vector256.Sum(Chains<T>(chain, q, key, d, dim)) * scale;
        }

        Vector256<float> even = default, odd = default;
        for (; d + 16 <= dim; d += 16)
        {
            even = Vector256.FusedMultiplyAdd(Vector256.Load(q + d), T.Load8(key, d), even);
            odd = Vector256.FusedMultiplyAdd(Vector256.Load(q + d + 8), T.Load8(key, d + 8), odd);
        }

        if (d < dim)
        {
            even = Vector256.FusedMultiplyAdd(Vector256.Load(q + d), T.Load8(key, d), even);
        }

        return Vector256.Sum(even + odd) * scale;
    }

    /// <summary>
    /// Replaces a query's <paramref name="keys"/> scores by exp(score - <paramref name="max"/>), eight at a time and the
    /// rest one by one, and returns their sum (eight lane sums, added across, then the rest in order).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Exponentiate(float* scores, int keys, float max)
    {

        var shift = Vector256.Create(max);
        var sums = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= keys; i += 8)
        {
            var e = PolynomialExp.Exp8(Vector256.Load(scores + i) - shift);
            Vector256.Store(e, scores + i);
            sums += e;
        }

        var total = Vector256.Sum(sums);
        for (; i < keys; i++)
        {
            var e = PolynomialExp.Exp(scores[i] - max);
            scores[i] = e;
            total += e;
        }

        return total;
    }

    /// <summary>
    /// One query over its first <paramref name="keys"/> keys and values (rows <paramref name="rowBytes"/> apart) into
    /// <paramref name="output"/>, with the arithmetic above. Four keys' chains run side by side and a block of 64 outputs
    /// stays in registers, which changes the order of no operation: only the time (one chain at a time left each
    /// multiply-add waiting for the one before, and the outputs went through memory once per key).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void One<T>(float* q, nint k, nint v, nint rowBytes, int keys, int dim, float scale, float* scores, float* output, bool prefetch)
        where T : struct, IElements
    {
        var maxima = Vector128.Create(float.NegativeInfinity);
        var scaling = Vector128.Create(scale);
        var s = 0;
        for (; s + 4 <= keys; s += 4)
        {
            if (prefetch)
            {
                Prefetch(k + ((s + PrefetchKeys) * rowBytes), 4 * rowBytes, toL1: true); // keys a few rows on: a cold cache's short streams otherwise wait on memory
                Prefetch(v + (s * rowBytes), 4 * rowBytes, toL1: false); // these keys' values, read after the softmax
            }

            var row0 = (void*)(k + (s * rowBytes));
            var row1 = (void*)(k + ((s + 1) * rowBytes));
            var row2 = (void*)(k + ((s + 2) * rowBytes));
            var row3 = (void*)(k + ((s + 3) * rowBytes));
            Vector128<float> four;
            var d = 0;
            if (Avx512F.IsSupported)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (; d + 16 <= dim; d += 16)
                {
                    var x = Vector512.Load(q + d);
                    a0 = Avx512F.FusedMultiplyAdd(x, T.Load16(row0, d), a0);
                    a1 = Avx512F.FusedMultiplyAdd(x, T.Load16(row1, d), a1);
                    a2 = Avx512F.FusedMultiplyAdd(x, T.Load16(row2, d), a2);
                    a3 = Avx512F.FusedMultiplyAdd(x, T.Load16(row3, d), a3);
                }

                four = Sum4(Chains<T>(a0, q, row0, d, dim), Chains<T>(a1, q, row1, d, dim), Chains<T>(a2, q, row2, d, dim), Chains<T>(a3, q, row3, d, dim)) * scaling;
            }
            else
            {
                Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default, o0 = default, o1 = default, o2 = default, o3 = default;
                for (; d + 16 <= dim; d += 16)
                {
                    var x = Vector256.Load(q + d);
                    var y = Vector256.Load(q + d + 8);
                    e0 = Vector256.FusedMultiplyAdd(x, T.Load8(row0, d), e0);
                    o0 = Vector256.FusedMultiplyAdd(y, T.Load8(row0, d + 8), o0);
                    e1 = Vector256.FusedMultiplyAdd(x, T.Load8(row1, d), e1);
                    o1 = Vector256.FusedMultiplyAdd(y, T.Load8(row1, d + 8), o1);
                    e2 = Vector256.FusedMultiplyAdd(x, T.Load8(row2, d), e2);
                    o2 = Vector256.FusedMultiplyAdd(y, T.Load8(row2, d + 8), o2);
                    e3 = Vector256.FusedMultiplyAdd(x, T.Load8(row3, d), e3);
                    o3 = Vector256.FusedMultiplyAdd(y, T.Load8(row3, d + 8), o3);
                }

                if (d < dim)
                {
                    var x = Vector256.Load(q + d);
                    e0 = Vector256.FusedMultiplyAdd(x, T.Load8(row0, d), e0);
                    e1 = Vector256.FusedMultiplyAdd(x, T.Load8(row1, d), e1);
                    e2 = Vector256.FusedMultiplyAdd(x, T.Load8(row2, d), e2);
                    e3 = Vector256.FusedMultiplyAdd(x, T.Load8(row3, d), e3);
                }

                four = Sum4(e0 + o0, e1 + o1, e2 + o2, e3 + o3) * scaling;
            }

            four.Store(scores + s);
            maxima = Vector128.MaxNative(maxima, four);
        }

        var max = Largest(maxima);
        for (; s < keys; s++)
        {
            var score = Score<T>(q, (void*)(k + (s * rowBytes)), dim, scale);
            scores[s] = score;
            max = Larger(max, score);
        }

        var inverse = 1f / Exponentiate(scores, keys, max);
        var d0 = 0;
        if (Avx512F.IsSupported)
        {
            for (; d0 + 64 <= dim; d0 += 64)
            {
                Vector512<float> o0 = default, o1 = default, o2 = default, o3 = default;
                for (s = 0; s < keys; s++)
                {
                    var row = (void*)(v + (s * rowBytes));
                    var p = Vector512.Create(scores[s]);
                    o0 = Avx512F.FusedMultiplyAdd(p, T.Load16(row, d0), o0);
                    o1 = Avx512F.FusedMultiplyAdd(p, T.Load16(row, d0 + 16), o1);
                    o2 = Avx512F.FusedMultiplyAdd(p, T.Load16(row, d0 + 32), o2);
                    o3 = Avx512F.FusedMultiplyAdd(p, T.Load16(row, d0 + 48), o3);
                }

                var scaled = Vector512.Create(inverse);
                Vector512.Store(o0 * scaled, output + d0);
                Vector512.Store(o1 * scaled, output + d0 + 16);
                Vector512.Store(o2 * scaled, output + d0 + 32);
                Vector512.Store(o3 * scaled, output + d0 + 48);
            }
        }
        else
        {
            for (; d0 + 64 <= dim; d0 += 64)
            {
                Vector256<float> o0 = default, o1 = default, o2 = default, o3 = default, o4 = default, o5 = default, o6 = default, o7 = default;
                for (s = 0; s < keys; s++)
                {
                    var row = (void*)(v + (s * rowBytes));
                    var p = Vector256.Create(scores[s]);
                    o0 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0), o0);
                    o1 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 8), o1);
                    o2 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 16), o2);
                    o3 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 24), o3);
                    o4 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 32), o4);
                    o5 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 40), o5);
                    o6 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 48), o6);
                    o7 = Vector256.FusedMultiplyAdd(p, T.Load8(row, d0 + 56), o7);
                }

                var scaled = Vector256.Create(inverse);
                Vector256.Store(o0 * scaled, output + d0);
                Vector256.Store(o1 * scaled, output + d0 + 8);
                Vector256.Store(o2 * scaled, output + d0 + 16);
                Vector256.Store(o3 * scaled, output + d0 + 24);
                Vector256.Store(o4 * scaled, output + d0 + 32);
                Vector256.Store(o5 * scaled, output + d0 + 40);
                Vector256.Store(o6 * scaled, output + d0 + 48);
                Vector256.Store(o7 * scaled, output + d0 + 56);
            }
        }

        for (; d0 < dim; d0 += 8)
        {
            var o = Vector256<float>.Zero;
            for (s = 0; s < keys; s++)
            {
                o = Vector256.FusedMultiplyAdd(Vector256.Create(scores[s]), T.Load8((void*)(v + (s * rowBytes)), d0), o);
            }

            Vector256.Store(o * Vector256.Create(inverse), output + d0);
        }
    }

    /// <summary>
    /// The largest of four scores. Any order gives the same shift for the softmax: the largest of finite scores is exact,
    /// and -0 or +0 shift every score alike. A NaN score may be passed over here, but its exponential is NaN, and so
    /// then is every output, as with IEEE maxima (which cost three instructions each instead of one).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Largest(Vector128<float> four) =>
        Larger(Larger(four.GetElement(0), four.GetElement(1)), Larger(four.GetElement(2), four.GetElement(3)));

    /// <summary>The larger of two scores, as <see cref="Largest"/> takes them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Larger(float a, float b) => b > a ? b : a;
}
