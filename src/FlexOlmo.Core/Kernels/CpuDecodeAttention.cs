using System.Runtime.CompilerServices;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, N=query heads, K=kv heads, S=keys, D=head dim

/// <summary>
/// Attention of new tokens over their cached keys, on the CPU, for decode steps, the server's fused steps and prefills:
/// per token and query head, the scores q.k/sqrt(D) in fp32, their softmax, and the softmax-weighted sum of the values,
/// all accumulated in fp32 (the arithmetic is in CpuDecodeAttention.Heads.cs). A prompt chunk's tokens
/// (<see cref="AttendRows"/>) and a causal pass's (<see cref="AttendCausal"/>) each attend causally, exactly as a
/// one-token step at their position would.
/// </summary>
/// <remarks>
/// Written by hand because libtorch's CPU scaled_dot_product_attention costs 30-45 us per call at one query (its
/// blocked flash kernel allocates and parallelises for a few hundred FLOPs), and, measured on this machine in a decode
/// step whose weight streaming evicts its code and data between layers, about 0.2 ms of each layer's 0.45 ms outside
/// the matrix products. Each row and head is computed on its own, so a row's result never depends on the rows beside
/// it, and a prompt token's never depends on the chunk it came in. Used only without autograd and without a mask (no
/// left padding); chunks of more than <see cref="MaxTokensPerSequence"/> tokens go to SDPA, and so do causal passes whose
/// heads' keys and values outgrow <see cref="MaxCausalHeadBytes"/>.
/// <para>
/// For a prefill it is also faster than SDPA, which on a Zen 5 EPYC runs its products through MKL's bf16 GEMM widened
/// to the AVX2 sgemm. A 16-head causal sequence (D = 64, two threads, medians of 31 alternating calls): 5.5 ms against
/// 10.5 at 512 bf16 tokens, 5.9 against 10.2 in fp32; 72 against 84 ms at 2,048 bf16 tokens, 85 against 86 in fp32;
/// 250 against 281 ms at 4,096 bf16 tokens, but 430 against 301 in fp32 (seven calls), whence the limit. In the forward
/// benchmark's bf16 forward, the attention layers took 155 ms against 181 (medians of 20 alternating forwards).
/// </para>
/// </remarks>
internal static unsafe partial class CpuDecodeAttention
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

    /// <summary>
    /// Consecutive tokens of a sequence that one task takes, one after another (fewer at its end): a prefill's thousands
    /// of (token, head) pairs as a few hundred tasks, each over one head's keys and values, which stay in cache between its
    /// tokens. A sequence of fewer new tokens (decoding) takes its heads as <see cref="RowsForRowTasks"/> says.
    /// </summary>
    /// <remarks>
    /// Tokens of a task computed together, sharing each key and value row they load (an AVX-512 kernel of four queries,
    /// 16 scores or 64 outputs of each in registers at a time) were measured and dropped: on a 2-core Zen 5 EPYC, a
    /// 16-head causal sequence of 512 tokens took 5.60 ms against 5.54 one token at a time in bf16, 5.97 against 5.89 in
    /// fp32; at 2,048 tokens 77.3 against 72.2 and 79.6 against 85.1 (medians of 31 alternating calls).
    /// </remarks>
    private const int TokensPerTask = 4;

    /// <summary>Most scores a task keeps on its stack (64 KB, not zeroed); a longer cache's are allocated.</summary>
    private const int MaxStackScores = 16384;

    /// <summary>
    /// Most bytes of one head's keys and values (2·S·D elements) for which a causal pass of several tokens comes here: up to
    /// a core's L2 (1 MB on a Zen 5 EPYC), where this kernel outran SDPA; at twice that, fp32 took 1.4x SDPA's time (see
    /// the remarks). 4,096 bf16 or 2,048 fp32 keys at D = 64.
    /// </summary>
    public const long MaxCausalHeadBytes = 1L << 20;

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

    /// <summary>
    /// Whether <see cref="AttendCausal"/> applies: <paramref name="query"/> [B, N, T, D] as <see cref="Applies"/> asks but
    /// with any number of tokens, over contiguous buffers [B, K, C, D] that hold <paramref name="length"/> keys, the
    /// query's T among them; more than one token only while a head's keys and values take at most
    /// <see cref="MaxCausalHeadBytes"/>.
    /// </summary>
    public static bool AppliesCausal(Tensor query, Tensor keys, Tensor values, long length) =>
        query.dim() == 4 && Fits(query, keys, values) && query.size(0) == keys.size(0)
        && query.size(2) >= 1 && length >= query.size(2) && length <= keys.size(2) && length <= int.MaxValue / 2
        && query.numel() < int.MaxValue
        && (query.size(2) == 1 || 2 * length * query.size(3) * query.ElementSize <= MaxCausalHeadBytes);

    /// <summary>Device, autograd, dtypes, head sizes and layouts that every entry point needs.</summary>
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
    /// A batch's new tokens over their shared time axis: <paramref name="query"/> [B, N, T, D] holds the last T of the
    /// <paramref name="length"/> keys in the buffers keys and values [B, K, C, D], and token t attends causally to the first
    /// length - T + t + 1 of them -> [B, N, T, D] in the query's dtype. Each token and head is computed exactly as a
    /// one-token decode step at that position would (<see cref="Attend"/>), so a prefill's numbers are decoding's.
    /// </summary>
    public static Tensor AttendCausal(Tensor query, Tensor keys, Tensor values, long length)
    {
        var batch = (int)query.size(0);
        var heads = (int)query.size(1);
        var tokens = (int)query.size(2);
        var dim = (int)query.size(3);
        var rowBytes = keys.size(1) * keys.size(2) * dim * keys.ElementSize; // one batch row's buffer
        var segments = new Segment[batch];
        for (var b = 0; b < batch; b++)
        {
            segments[b] = new Segment(QueryOffset: (long)b * heads * tokens * dim, HeadStride: (long)tokens * dim, TokenStride: dim, keys, values, b * rowBytes, (int)length, tokens);
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
    /// Every segment's tokens and heads, split over the cores when the work is large enough: a task is up to
    /// <see cref="TokensPerTask"/> of a segment's tokens, each with one head, or, for a segment of fewer new tokens, with
    /// all of them from <see cref="RowsForRowTasks"/> tokens per thread on. Each head's query is read in the
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
        using var q = query.contiguous(); // [.., N, T, D]: the segments' offsets are into this layout
        var output = empty(TensorShapes.Of(query), query.dtype); // [.., N, T, D], laid out as q
        var isBf16 = query.dtype == ScalarType.BFloat16;
        var qAddress = (nint)Unsafe.AsPointer(ref q.bytes.GetPinnableReference());
        var outAddress = (nint)Unsafe.AsPointer(ref output.bytes.GetPinnableReference());
        var rows = segments.Sum(segment => segment.Tokens);
        var rowTasks = rows >= RowsForRowTasks * parallelism;
        var firstTask = new int[segments.Length + 1]; // segment s's tasks are firstTask[s] .. firstTask[s + 1] - 1, TokensPerTask tokens at a time within each group of heads
        var addresses = new (nint Keys, nint Values, long HeadBytes, int Groups, int HeadsPerTask)[segments.Length];
        var work = 0L;
        for (var s = 0; s < segments.Length; s++)
        {
            var segment = segments[s];
            var headsPerTask = rowTasks && segment.Tokens < TokensPerTask ? heads : 1; // a prefill's heads go to tasks of their own: each then rereads one head's keys and values, which stay in cache
            firstTask[s + 1] = firstTask[s] + (heads / headsPerTask * UnitsOf(segment.Tokens));
            addresses[s] = (
                (nint)Unsafe.AsPointer(ref segment.Keys.bytes.GetPinnableReference()) + (nint)segment.ByteOffset,
                (nint)Unsafe.AsPointer(ref segment.Values.bytes.GetPinnableReference()) + (nint)segment.ByteOffset,
                segment.Keys.size(2) * dim * segment.Keys.ElementSize,
                heads / (int)segment.Keys.size(1),
                headsPerTask);
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
            var units = UnitsOf(segment.Tokens);
            var firstToken = local % units * TokensPerTask;
            var (keysAddress, valuesAddress, headBytes, kvGroups, headsPerTask) = addresses[s];
            var firstHead = local / units * headsPerTask;
            var tokens = Math.Min(TokensPerTask, segment.Tokens - firstToken);
            var count = segment.Length - segment.Tokens + firstToken + 1; // causal: the first token's own key and those before it
            Span<float> scores = count + tokens <= MaxStackScores ? stackalloc float[count + tokens] : new float[count + tokens]; // the last token's scores are count + tokens - 1
            var queryHead = stackalloc float[dim];
            var outputHead = stackalloc float[dim];
            fixed (float* scoresAddress = scores)
            {
                for (var t = firstToken; t < firstToken + tokens; t++)
                {
                    for (var n = firstHead; n < firstHead + headsPerTask; n++)
                    {
                        var kvOffset = (nint)(n / kvGroups * headBytes);
                        var at = segment.QueryOffset + (n * segment.HeadStride) + (t * segment.TokenStride);
                        var keys = count + t - firstToken;
                        if (isBf16)
                        {
                            CpuGemv.Widen((ushort*)qAddress + at, queryHead, dim);
                            One<Bf16Elements>(queryHead, keysAddress + kvOffset, valuesAddress + kvOffset, rowBytes, keys, dim, scale, scoresAddress, outputHead, prefetch: t == 0);
                            CpuGemv.Narrow(outputHead, (ushort*)outAddress + at, dim);
                        }
                        else
                        {
                            One<F32Elements>((float*)qAddress + at, keysAddress + kvOffset, valuesAddress + kvOffset, rowBytes, keys, dim, scale, scoresAddress, (float*)outAddress + at, prefetch: t == 0);
                        }
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

    /// <summary>A sequence's tasks per group of heads: its new tokens <see cref="TokensPerTask"/> at a time, the last task taking what is left.</summary>
    private static int UnitsOf(int tokens) => (tokens + TokensPerTask - 1) / TokensPerTask;

    /// <summary>
    /// One batch row's or sequence's queries over its cache: where its (token 0, head 0) query starts in the query and
    /// how far apart its heads and tokens lie (in elements), its buffers [.., K, C, D] from <paramref name="ByteOffset"/>,
    /// and the keys they hold, the last <paramref name="Tokens"/> of which are its new tokens'.
    /// </summary>
    private readonly record struct Segment(long QueryOffset, long HeadStride, long TokenStride, Tensor Keys, Tensor Values, long ByteOffset, int Length, int Tokens);
}

/// <summary>
/// A sequence in <see cref="CpuDecodeAttention.AttendRows"/>: its one-row cache buffers keys and values [1, K, C, D], the
/// <paramref name="Length"/> keys they hold with this pass's, and how many of them (<paramref name="Tokens"/>) this pass adds.
/// </summary>
internal readonly record struct CachedSequence(Tensor Keys, Tensor Values, long Length, int Tokens);
