using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, N=query heads, K=kv heads, S=keys, D=head dim

/// <summary>
/// Attention of new tokens over their cached keys, on the CPU, for decode steps and the server's fused steps: per token
/// and query head, the scores q.k/sqrt(D) in fp32, their softmax, and the softmax-weighted sum of the values, all
/// accumulated in fp32. A prompt chunk's tokens (<see cref="AttendRows"/>) each attend causally, exactly as a one-token
/// step at their position would.
/// </summary>
/// <remarks>
/// Written by hand because libtorch's CPU scaled_dot_product_attention costs 30-45 us per call at one query (its
/// blocked flash kernel allocates and parallelises for a few hundred FLOPs), and, measured on this machine in a decode
/// step whose weight streaming evicts its code and data between layers, about 0.2 ms of each layer's 0.45 ms outside
/// the matrix products. Each row and head is computed on its own, so a row's result never depends on the rows beside
/// it, and a prompt token's never depends on the chunk it came in. Used only without autograd and without a mask (no
/// left padding); chunks of more than <see cref="MaxTokensPerSequence"/> tokens go to SDPA.
/// </remarks>
internal static unsafe class CpuDecodeAttention
{
    /// <summary>Work (B·N·S·D) from which the heads are split over the cores; below it, one core is faster than waking another.</summary>
    private const long ParallelWork = 1L << 20;

    /// <summary>
    /// From this many new tokens per thread on, a task is one token's heads in turn rather than one head: a thread then
    /// reads each token's keys and values as long runs (a row's heads lie one after another in the cache) instead of
    /// short ones another thread's heads interrupt. Measured on a 2-core Zen 5 EPYC, 16 decoding rows of 16 bf16 heads
    /// over 144 keys each, the caches cold (8 layers after a 128 MB read each, alternating in one process, paired
    /// medians of 40): 0.85-0.88x the time of a task per head. Fewer tokens keep a task per head, so both cores get work.
    /// </summary>
    private const int RowsForRowTasks = 4;

    /// <summary>
    /// How many key rows ahead a query's score loop prefetches, while it also prefetches the values of the keys it
    /// scores. A decode step finds its cache cold (the weights streamed through since the layer last read it), and a
    /// head's keys are a short stream the hardware prefetchers hardly ramp up on. Only a sequence's first new token
    /// prefetches; it leaves the keys in cache for the rest of its chunk, where prefetching would only cost. Measured on
    /// a 2-core Zen 5 EPYC, one token of 16 heads of 64 over 150 keys after flushing the caches (3 alternating runs):
    /// 67-81 µs instead of 79-118 in fp32, 74-98 instead of 108-118 in bf16; a 17-token chunk over 2,000 warm keys took
    /// 30% longer when every token prefetched.
    /// </summary>
    private const int PrefetchKeys = 16;

    /// <summary>Most new tokens of one sequence in <see cref="AttendRows"/>: a prompt chunk (at most <see cref="Generation.PrefillChunks.Tokens"/> in <c>generate</c> and the server).</summary>
    public const int MaxTokensPerSequence = 64;

    /// <summary>
    /// Whether <see cref="Attend"/> applies: CPU, no autograd, one query token, fp32 or bf16, head dim a multiple of 8, and
    /// contiguous cache buffers holding at least <paramref name="length"/> keys.
    /// </summary>
    public static bool Applies(Tensor query, Tensor keys, Tensor values, long length) =>
        query.dim() == 4 && query.size(2) == 1 && Fits(query, keys, values) && query.size(0) == keys.size(0)
        && length > 0 && length <= keys.size(2) && length <= int.MaxValue / 2;

    /// <summary>
    /// Whether <see cref="AttendRows"/> applies: <paramref name="query"/> [R, N, 1, D] as <see cref="Applies"/> asks, one
    /// row per new token, and each sequence's one-row cache buffers holding its cached and new keys.
    /// </summary>
    public static bool AppliesRows(Tensor query, IReadOnlyList<CachedSequence> sequences)
    {
        if (query.dim() != 4 || query.size(2) != 1 || sequences.Count == 0)
        {
            return false;
        }

        var rows = 0L;
        foreach (var s in sequences)
        {
            if (!Fits(query, s.Keys, s.Values) || s.Keys.size(0) != 1 || s.Tokens < 1 || s.Tokens > MaxTokensPerSequence
                || s.Length < s.Tokens || s.Length > s.Keys.size(2) || s.Length > int.MaxValue / 2)
            {
                return false;
            }

            rows += s.Tokens;
        }

        return rows == query.size(0);
    }

    /// <summary>Device, autograd, dtypes, head sizes and layouts that both entry points need.</summary>
    private static bool Fits(Tensor query, Tensor keys, Tensor values) =>
        ManagedKernels.Usable(query, keys) && values.device_type == TorchSharp.DeviceType.CPU
        && keys.dim() == 4 && query.size(3) % 8 == 0 && query.size(3) == keys.size(3)
        && keys.size(1) > 0 && query.size(1) % keys.size(1) == 0
        && query.dtype is ScalarType.Float32 or ScalarType.BFloat16 && keys.dtype == query.dtype && values.dtype == query.dtype
        && keys.is_contiguous() && values.is_contiguous() && TensorShapes.Same(values, keys);

    /// <summary>
    /// query [B, N, 1, D] over the first <paramref name="length"/> positions of the cache buffers keys and values
    /// [B, K, C, D] -> [B, N, 1, D] in the query's dtype.
    /// </summary>
    public static Tensor Attend(Tensor query, Tensor keys, Tensor values, long length)
    {
        var batch = (int)query.size(0);
        var heads = (int)query.size(1);
        var dim = (int)query.size(3);
        var rowBytes = keys.size(1) * keys.size(2) * dim * keys.ElementSize; // one batch row's buffer
        var segments = new Segment[batch];
        for (var b = 0; b < batch; b++)
        {
            segments[b] = new Segment(QueryOffset: (long)b * heads * dim, HeadStride: dim, TokenStride: 0, keys, values, b * rowBytes, (int)length, Tokens: 1);
        }

        return Run(query, segments);
    }

    /// <summary>
    /// One pass's rows over their sequences' caches: <paramref name="query"/> [R, N, 1, D] holds sequence 0's new tokens, then
    /// sequence 1's, and so on (<see cref="CachedSequence.Tokens"/> rows each); token t of a sequence whose cache holds
    /// <see cref="CachedSequence.Length"/> keys (its new ones last) attends to the first Length - Tokens + t + 1 of them,
    /// causally -> [R, N, 1, D] in the query's dtype. Every row and head is computed exactly as a one-token decode step
    /// at that position computes it, so a prompt's numbers do not depend on how it is cut into chunks, and every row of
    /// the pass is split over the cores together.
    /// </summary>
    public static Tensor AttendRows(Tensor query, IReadOnlyList<CachedSequence> sequences)
    {
        var heads = (int)query.size(1);
        var dim = (int)query.size(3);
        var segments = new Segment[sequences.Count];
        var row = 0L;
        for (var s = 0; s < sequences.Count; s++)
        {
            var sequence = sequences[s];
            segments[s] = new Segment(QueryOffset: row * heads * dim, HeadStride: dim, TokenStride: (long)heads * dim, sequence.Keys, sequence.Values, 0, (int)sequence.Length, sequence.Tokens);
            row += sequence.Tokens;
        }

        return Run(query, segments);
    }

    /// <summary>
    /// Every segment's tokens and heads, split over the cores when the work is large enough: a task is one token's heads
    /// (all of them from <see cref="RowsForRowTasks"/> tokens per thread on, else one). Each head's query is read in the
    /// query's dtype and widened to fp32, and its output rounded straight into the query's dtype (libtorch's rounding), the
    /// very values that converting the whole query to fp32 and the output back gave: without those two libtorch calls, a
    /// bf16 layer's attention took 0.59x the time at one row and, with row tasks, 0.53x at 16 (the probe of
    /// <see cref="RowsForRowTasks"/>); in the decode benchmark's bf16 steps, 0.50-0.54 ms instead of 0.71-0.73 at batch 1.
    /// </summary>
    private static Tensor Run(Tensor query, Segment[] segments)
    {
        var heads = (int)query.size(1);
        var dim = (int)query.size(3);
        var scale = (float)(1.0 / Math.Sqrt(dim));
        var parallelism = get_num_threads();
        using var q = query.contiguous(); // [.., N, 1, D]
        var output = empty(TensorShapes.Of(query), query.dtype); // [.., N, 1, D]
        var isBf16 = query.dtype == ScalarType.BFloat16;
        var qAddress = (nint)Unsafe.AsPointer(ref q.bytes.GetPinnableReference());
        var outAddress = (nint)Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var rows = segments.Sum(segment => segment.Tokens);
        var headsPerTask = rows >= RowsForRowTasks * parallelism ? heads : 1;
        var groups = heads / headsPerTask;
        var firstTask = new int[segments.Length + 1]; // segment s's tasks are firstTask[s] .. firstTask[s + 1] - 1, token by token within each group of heads
        var addresses = new (nint Keys, nint Values, long HeadBytes, int Groups)[segments.Length];
        var work = 0L;
        for (var s = 0; s < segments.Length; s++)
        {
            var segment = segments[s];
            firstTask[s + 1] = firstTask[s] + (groups * segment.Tokens);
            addresses[s] = (
                (nint)Unsafe.AsPointer(ref segment.Keys.bytes.GetPinnableReference()) + (nint)segment.ByteOffset,
                (nint)Unsafe.AsPointer(ref segment.Values.bytes.GetPinnableReference()) + (nint)segment.ByteOffset,
                segment.Keys.size(2) * dim * segment.Keys.ElementSize,
                heads / (int)segment.Keys.size(1));
            work += (long)heads * segment.Tokens * segment.Length * dim;
        }

        var rowBytes = (nint)dim * (isBf16 ? 2 : 4);

        void Task(int task)
        {
            var s = 0;
            while (task >= firstTask[s + 1])
            {
                s++;
            }

            var segment = segments[s];
            var local = task - firstTask[s];
            var t = local % segment.Tokens;
            var firstHead = local / segment.Tokens * headsPerTask;
            var (keysAddress, valuesAddress, headBytes, kvGroups) = addresses[s];
            var count = segment.Length - segment.Tokens + t + 1; // causal: its own key and those before it
            Span<float> scores = count <= 4096 ? stackalloc float[count] : new float[count];
            var queryHead = stackalloc float[dim];
            var outputHead = stackalloc float[dim];
            fixed (float* scoresAddress = scores)
            {
                for (var n = firstHead; n < firstHead + headsPerTask; n++)
                {
                    var kvOffset = (nint)(n / kvGroups * headBytes);
                    var at = segment.QueryOffset + (n * segment.HeadStride) + (t * segment.TokenStride);
                    if (isBf16)
                    {
                        CpuGemv.Widen((ushort*)qAddress + at, queryHead, dim);
                        One<Bf16Elements>(queryHead, keysAddress + kvOffset, valuesAddress + kvOffset, rowBytes, count, dim, scale, scoresAddress, outputHead, prefetch: t == 0);
                        CpuGemv.Narrow(outputHead, (ushort*)outAddress + at, dim);
                    }
                    else
                    {
                        One<F32Elements>((float*)qAddress + at, keysAddress + kvOffset, valuesAddress + kvOffset, rowBytes, count, dim, scale, scoresAddress, (float*)outAddress + at, prefetch: t == 0);
                    }
                }
            }
        }

        var tasks = firstTask[^1];
        if (work >= ParallelWork && parallelism > 1)
        {
            KernelThreads.For(tasks, parallelism, Task);
        }
        else
        {
            for (var task = 0; task < tasks; task++)
            {
                Task(task);
            }
        }

        foreach (var segment in segments)
        {
            GC.KeepAlive(segment.Keys);
            GC.KeepAlive(segment.Values);
        }

        return output;
    }

    /// <summary>
    /// <see cref="Vector256.Sum{T}(Vector256{T})"/> of four vectors at once, each with the very additions it makes, in
    /// its order: ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)). Horizontal adds pair the lanes the same way, and an
    /// addition of two floats is the same either way round; one call replaces four shuffle-and-add ladders.
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
    /// One batch row's or sequence's queries over its cache: where its (token 0, head 0) query starts in the query and
    /// how far apart its heads and tokens lie (in elements), its buffers [.., K, C, D] from <paramref name="ByteOffset"/>,
    /// and the keys they hold, the last <paramref name="Tokens"/> of which are its new tokens'.
    /// </summary>
    private readonly record struct Segment(long QueryOffset, long HeadStride, long TokenStride, Tensor Keys, Tensor Values, long ByteOffset, int Length, int Tokens);

    /// <summary>
    /// One query over its first <paramref name="keys"/> keys and values (rows <paramref name="rowBytes"/> apart) into
    /// <paramref name="output"/>. Each score is one 8-lane chain of multiply-adds over the head dim, summed across its
    /// lanes; each output element, one chain of multiply-adds over the keys in order. Four keys' chains run side by side
    /// and a block of 64 outputs stays in registers, which changes the order of no operation: only the time (one chain
    /// at a time left each multiply-add waiting for the one before, and the outputs went through memory once per key).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void One<T>(float* q, nint k, nint v, nint rowBytes, int keys, int dim, float scale, float* scores, float* output, bool prefetch)
        where T : struct, IElements
    {
        var max = float.NegativeInfinity;
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
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (var d = 0; d < dim; d += 8)
            {
                var x = Vector256.Load(q + d);
                a0 = Vector256.FusedMultiplyAdd(x, T.Load8(row0, d), a0);
                a1 = Vector256.FusedMultiplyAdd(x, T.Load8(row1, d), a1);
                a2 = Vector256.FusedMultiplyAdd(x, T.Load8(row2, d), a2);
                a3 = Vector256.FusedMultiplyAdd(x, T.Load8(row3, d), a3);
            }

            var four = Sum4(a0, a1, a2, a3) * Vector128.Create(scale);
            four.Store(scores + s);
            max = Math.Max(Math.Max(max, four.GetElement(0)), Math.Max(Math.Max(four.GetElement(1), four.GetElement(2)), four.GetElement(3))); // exact, so in any order
        }

        for (; s < keys; s++)
        {
            var row = (void*)(k + (s * rowBytes));
            var acc = Vector256<float>.Zero;
            for (var d = 0; d < dim; d += 8)
            {
                acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + d), T.Load8(row, d), acc);
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

        var inverse = Vector256.Create(1f / total);
        var d0 = 0;
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

            Vector256.Store(o0 * inverse, output + d0);
            Vector256.Store(o1 * inverse, output + d0 + 8);
            Vector256.Store(o2 * inverse, output + d0 + 16);
            Vector256.Store(o3 * inverse, output + d0 + 24);
            Vector256.Store(o4 * inverse, output + d0 + 32);
            Vector256.Store(o5 * inverse, output + d0 + 40);
            Vector256.Store(o6 * inverse, output + d0 + 48);
            Vector256.Store(o7 * inverse, output + d0 + 56);
        }

        for (; d0 < dim; d0 += 8)
        {
            var o = Vector256<float>.Zero;
            for (s = 0; s < keys; s++)
            {
                o = Vector256.FusedMultiplyAdd(Vector256.Create(scores[s]), T.Load8((void*)(v + (s * rowBytes)), d0), o);
            }

            Vector256.Store(o * inverse, output + d0);
        }
    }
}

/// <summary>
/// A sequence in <see cref="CpuDecodeAttention.AttendRows"/>: its one-row cache buffers keys and values [1, K, C, D], the
/// <paramref name="Length"/> keys they hold with this pass's, and how many of them (<paramref name="Tokens"/>) this pass adds.
/// </summary>
internal readonly record struct CachedSequence(Tensor Keys, Tensor Values, long Length, int Tokens);
