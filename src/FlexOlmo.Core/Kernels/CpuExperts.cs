using System.Runtime.Intrinsics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// N=tokens, H=hidden, I=intermediate, M=routed (token, expert) pairs

/// <summary>
/// A decode-sized mixture-of-experts layer on the CPU: every routed expert's SwiGLU in two parallel passes over all
/// the experts' weights (gate and up with silu·up at the end of each task, then down), and the weighted sum in managed
/// code. Bit for bit what the libtorch dispatch with <see cref="CpuGemv"/> and <see cref="CpuSwiGlu"/> computes.
/// </summary>
/// <remarks>
/// Written by hand because that dispatch made two kernel passes per expert and a dozen small libtorch ops per layer
/// (gathers, a concatenation, the weighting, a scatter): at batch 16 on a 2-core Xeon, a third of the experts' time in
/// a bf16 decode step went outside the products, and each pass ends in a wait for the slower core. Used only where
/// every routed expert's products run on <see cref="CpuGemv"/> anyway (CPU, no autograd, fp32 or bf16, few rows).
/// </remarks>
internal static unsafe class CpuExperts
{
    /// <summary>Most routed pairs in one call: bounds the fp32 scratch (pairs × (2 H + I) floats); more go through libtorch's dispatch, with the same numbers.</summary>
    public const int MaxPairs = 256;

    [ThreadStatic]
    private static float[]? _scratch;
    [ThreadStatic]
    private static float[]? _taskScratch;

    /// <summary>Whether <see cref="Forward(Tensor, IReadOnlyList{Olmo2Mlp}, ExpertRoutes)"/> applies: every routed expert's three products are <see cref="CpuGemv"/>'s for its rows, and silu·up is <see cref="CpuSwiGlu"/>'s.</summary>
    public static bool Applies(Tensor flat, IReadOnlyList<Olmo2Mlp> experts, ExpertRoutes routes, bool rowInvariant)
    {
        if (routes.Pairs > MaxPairs || flat.dim() != 2 || !flat.is_contiguous() || flat.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
        {
            return false;
        }

        var hidden = flat.size(1);
        for (var e = 0; e < experts.Count; e++)
        {
            var rows = routes.PerExpert[e];
            if (rows == 0)
            {
                continue;
            }

            var expert = experts[e];
            var intermediate = expert.GateProj.OutFeatures;
            if (!ManagedKernels.Usable(flat, expert.GateProj.Weight) || !ManagedKernels.Usable(flat, expert.UpProj.Weight) || !ManagedKernels.Usable(flat, expert.DownProj.Weight)
                || !CpuGemv.Takes(expert.GateProj.Weight, flat.dtype, hidden, rows, rowInvariant)
                || !CpuGemv.Takes(expert.UpProj.Weight, flat.dtype, hidden, rows, rowInvariant)
                || !CpuGemv.Takes(expert.DownProj.Weight, flat.dtype, intermediate, rows, rowInvariant)
                || expert.UpProj.Weight.size(0) != intermediate || expert.DownProj.Weight.size(0) != hidden
                || !(rowInvariant || rows <= ManagedKernels.MaxRows))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// flat [N, H] -> [N, H] in its dtype: each token's experts' outputs, each weighted in fp32 and rounded to the dtype,
    /// added to zero in increasing expert order (as the dispatch's index_add_ adds them).
    /// </summary>
    public static Tensor Forward(Tensor flat, IReadOnlyList<Olmo2Mlp> experts, ExpertRoutes routes) =>
        Forward(flat, experts, routes, CpuGemv.UsesAvx512);

    /// <summary>As <see cref="Forward(Tensor, IReadOnlyList{Olmo2Mlp}, ExpertRoutes)"/>, the products on the AVX-512 tiles or (<paramref name="tiles"/> false) the AVX2 path.</summary>
    internal static Tensor Forward(Tensor flat, IReadOnlyList<Olmo2Mlp> experts, ExpertRoutes routes, bool tiles)
    {
        tiles &= CpuGemv.UsesAvx512;
        var tokens = (int)flat.size(0);
        var hidden = (int)flat.size(1);
        var isBf16 = flat.dtype == ScalarType.BFloat16;
        var output = zeros([tokens, hidden], flat.dtype); // [N, H]
        var pairs = routes.Pairs;
        if (pairs == 0)
        {
            return output;
        }

        var parallelism = Math.Max(1, get_num_threads());
        var plan = Plan.Of(experts, routes, hidden, parallelism);
        var scratch = CpuGemv.Scratch(ref _scratch, ((long)pairs * hidden * 2) + plan.IntermediateFloats); // x [M, H], y [M, H], h [M, sum of I]
        fixed (float* buffer = scratch)
        {
            var x = buffer; // [M, H]: each pair's token, in fp32
            var y = buffer + ((long)pairs * hidden); // [M, H]: each pair's expert output, in fp32
            var h = y + ((long)pairs * hidden); // each expert's silu(gate)·up [rows_e, I_e], in fp32
            Gather(flat, routes, x, hidden, isBf16);
            var (xAddress, yAddress, hAddress) = ((nint)x, (nint)y, (nint)h);
            var elementBytes = isBf16 ? 2 : 4;
            Run(plan.GateUpTasks, plan.Elements / 3 * 2, elementBytes, parallelism, task => plan.GateUp(task, (float*)xAddress, (float*)hAddress, isBf16, tiles));
            Run(plan.DownTasks, plan.Elements / 3, elementBytes, parallelism, task => plan.Down(task, (float*)hAddress, (float*)yAddress, isBf16, tiles));
            var rows = new nint[pairs];
            for (var pair = 0; pair < pairs; pair++)
            {
                rows[pair] = (nint)(y + ((long)pair * hidden)); // fp32, rounded to the dtype as the sum reads it
            }

            if (isBf16)
            {
                WeightedSum<F32Elements, Bf16Elements>(routes, rows, (void*)CpuGemv.Address(output), tokens, hidden);
            }
            else
            {
                WeightedSum<F32Elements, F32Elements>(routes, rows, (void*)CpuGemv.Address(output), tokens, hidden);
            }
        }

        GC.KeepAlive(flat);
        return output;
    }

    /// <summary>
    /// Runs a pass's tasks over the cores (recorded in <see cref="PassProfile"/>), or on the caller alone when its weights
    /// are small enough to live in cache (<see cref="CpuGemv"/>'s rule).
    /// </summary>
    private static void Run(int tasks, long elements, int elementBytes, int parallelism, Action<int> task)
    {
        if (elements < CpuGemv.ParallelElements)
        {
            for (var i = 0; i < tasks; i++)
            {
                task(i);
            }
        }
        else
        {
            var start = PassProfile.Start();
            KernelThreads.For(tasks, parallelism, task);
            PassProfile.End(start, elements * elementBytes);
        }
    }

    /// <summary>Each pair's token row of <paramref name="flat"/> into x [M, H] in fp32 (bf16 widened exactly).</summary>
    private static void Gather(Tensor flat, ExpertRoutes routes, float* x, int hidden, bool isBf16)
    {
        var source = CpuGemv.Address(flat);
        for (var pair = 0; pair < routes.Pairs; pair++)
        {
            var target = x + ((long)pair * hidden);
            var token = (long)routes.Token[pair] * hidden;
            if (isBf16)
            {
                CpuGemv.Widen((ushort*)source + token, target, hidden);
            }
            else
            {
                new ReadOnlySpan<float>((float*)source + token, hidden).CopyTo(new Span<float>(target, hidden));
            }
        }
    }

    /// <summary>
    /// output[token] = dtype(0 + c_1 + c_2 + ...), with c = dtype(dtype(y[pair]) · weight) for the token's pairs in order
    /// (expert by expert), the sum in fp32 and rounded once: libtorch's (outputs * weights).to(dtype) and index_add_ onto
    /// zeros, whose CPU kernel sums a reduced-precision dtype in fp32 (measured: with three or more experts per token,
    /// rounding after each addition differs in the last bf16 bit). Pair p's output row y starts at
    /// <paramref name="rows"/>[p], in <typeparamref name="TRow"/>'s storage; <typeparamref name="TOut"/> is the dtype.
    /// </summary>
    /// <remarks>
    /// Token by token, each token's few pairs summed in registers and stored once: no fp32 buffer of the whole output,
    /// and the tokens split over the cores from <see cref="CpuGemv.ParallelElements"/> outputs on (a prefill's).
    /// </remarks>
    internal static void WeightedSum<TRow, TOut>(ExpertRoutes routes, nint[] rows, void* output, int tokens, int hidden)
        where TRow : struct, IElements
        where TOut : struct, IElements
    {
        var (first, pairs) = routes.ByToken(tokens);
        var outputAddress = (nint)output;

        void Tokens(int from, int to)
        {
            for (var t = from; t < to; t++)
            {
                var target = (void*)(outputAddress + ((nint)t * hidden * TOut.Size));
                var i = 0;
                for (; i + 8 <= hidden; i += 8)
                {
                    var sum = Vector256<float>.Zero;
                    for (var j = first[t]; j < first[t + 1]; j++)
                    {
                        var pair = pairs[j];
                        sum += TOut.Round8(TOut.Round8(TRow.Load8((void*)rows[pair], i)) * routes.Weight[pair]);
                    }

                    TOut.Store8(target, i, sum);
                }

                for (; i < hidden; i++)
                {
                    var sum = 0f;
                    for (var j = first[t]; j < first[t + 1]; j++)
                    {
                        var pair = pairs[j];
                        sum += TOut.Round(TOut.Round(TRow.Load1((void*)rows[pair], i)) * routes.Weight[pair]);
                    }

                    TOut.Store1(target, i, sum);
                }
            }
        }

        KernelThreads.ForRanges(tokens, (long)tokens * hidden >= CpuGemv.ParallelElements ? get_num_threads() : 1, 4, Tokens);
    }

    /// <summary>
    /// The routed experts' outputs <paramref name="outputs"/>[e] [rows_e, H] (null for an expert without pairs), weighted
    /// and summed per token as <see cref="WeightedSum{TRow, TOut}"/> does -> [N, H] in their dtype: the libtorch dispatch's
    /// numbers, without its concatenation, fp32 products, cast and scatter.
    /// </summary>
    public static Tensor Sum(ExpertRoutes routes, IReadOnlyList<Tensor?> outputs, int tokens, int hidden, ScalarType dtype)
    {
        var output = empty([tokens, hidden], dtype); // [N, H]
        var rows = new nint[routes.Pairs];
        var pair = 0;
        for (var e = 0; e < routes.PerExpert.Length; e++)
        {
            var count = routes.PerExpert[e];
            if (count == 0)
            {
                continue;
            }

            var expert = outputs[e]!;
            var address = CpuGemv.Address(expert);
            for (var r = 0; r < count; r++, pair++)
            {
                rows[pair] = address + ((nint)r * hidden * (nint)expert.ElementSize);
            }
        }

        if (tokens > 0)
        {
            if (dtype == ScalarType.BFloat16)
            {
                WeightedSum<Bf16Elements, Bf16Elements>(routes, rows, (void*)CpuGemv.Address(output), tokens, hidden);
            }
            else
            {
                WeightedSum<F32Elements, F32Elements>(routes, rows, (void*)CpuGemv.Address(output), tokens, hidden);
            }
        }

        GC.KeepAlive(outputs);
        return output;
    }

    /// <summary>Whether <see cref="Sum"/> takes these outputs: on the CPU without autograd, fp32 or bf16 [rows_e, H], contiguous.</summary>
    public static bool SumApplies(Tensor flat, IReadOnlyList<Tensor?> outputs, ExpertRoutes routes)
    {
        if (flat.dim() != 2 || flat.dtype is not (ScalarType.Float32 or ScalarType.BFloat16) || flat.numel() >= int.MaxValue)
        {
            return false;
        }

        for (var e = 0; e < routes.PerExpert.Length; e++)
        {
            if (routes.PerExpert[e] > 0 && (outputs[e] is not { } output || !ManagedKernels.Usable(flat, output) || output.dtype != flat.dtype
                || output.dim() != 2 || output.size(0) != routes.PerExpert[e] || output.size(1) != flat.size(1) || !output.is_contiguous()))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Where each routed expert's pairs, weights and intermediate activations lie, and how each pass splits into tasks:
    /// a task is one expert's outputs [first, last) of gate and up together (then silu·up of those columns), or of down.
    /// </summary>
    private sealed class Plan
    {
        private readonly List<Part> _parts = [];

        public long IntermediateFloats { get; private set; }

        /// <summary>Weight elements the routed experts hold: each weight is read once per pass.</summary>
        public long Elements { get; private set; }

        public int GateUpTasks { get; private set; }

        public int DownTasks { get; private set; }

        public static Plan Of(IReadOnlyList<Olmo2Mlp> experts, ExpertRoutes routes, int hidden, int parallelism)
        {
            var plan = new Plan();
            var firstPair = 0;
            for (var e = 0; e < experts.Count; e++)
            {
                var rows = routes.PerExpert[e];
                if (rows == 0)
                {
                    continue;
                }

                var expert = experts[e];
                var intermediate = (int)expert.GateProj.OutFeatures;
                var gateUpPerTask = CpuGemv.OutputsPerTask(intermediate, parallelism, 8); // whole vectors of silu·up (see GateUp)
                var downPerTask = CpuGemv.OutputsPerTask(hidden, parallelism, 4);
                var part = new Part(
                    CpuGemv.Address(expert.GateProj.Weight), CpuGemv.Address(expert.UpProj.Weight), CpuGemv.Address(expert.DownProj.Weight),
                    firstPair, rows, hidden, intermediate, plan.IntermediateFloats,
                    gateUpPerTask, plan.GateUpTasks, (intermediate + gateUpPerTask - 1) / gateUpPerTask,
                    downPerTask, plan.DownTasks, (hidden + downPerTask - 1) / downPerTask);
                plan._parts.Add(part);
                plan.GateUpTasks += part.GateUpTasks;
                plan.DownTasks += part.DownTasks;
                plan.IntermediateFloats += (long)rows * intermediate;
                plan.Elements += 3L * hidden * intermediate;
                firstPair += rows;
            }

            return plan;
        }

        /// <summary>
        /// Gate and up outputs [first, last) of one expert for its rows, each rounded to the dtype as the products'
        /// outputs are, then silu·up of those columns as <see cref="CpuSwiGlu"/> computes each row (its vector lanes start
        /// at whole multiples of 8 from the row's start here too), into h in fp32.
        /// </summary>
        public void GateUp(int task, float* x, float* h, bool isBf16, bool tiles)
        {
            var part = Find(task, static p => (p.FirstGateUpTask, p.GateUpTasks));
            var first = (task - part.FirstGateUpTask) * part.GateUpPerTask;
            var last = Math.Min(part.Intermediate, first + part.GateUpPerTask);
            var width = last - first;
            var rows = part.Rows;
            var taskFloats = (long)rows * width;
            var scratch = CpuGemv.Scratch(ref _taskScratch, 3 * taskFloats);
            fixed (float* buffer = scratch)
            {
                var gate = buffer; // [rows, width]
                var up = buffer + taskFloats; // [rows, width]
                var product = up + taskFloats; // [rows, width] in the dtype
                var input = x + ((long)part.FirstPair * part.Hidden);
                CpuGemv.Block(part.Gate, input, gate - first, part.Hidden, width, first, last, rows, isBf16, tiles);
                CpuGemv.Block(part.Up, input, up - first, part.Hidden, width, first, last, rows, isBf16, tiles);
                var target = h + part.IntermediateOffset;
                for (var m = 0; m < rows; m++)
                {
                    var at = (long)m * width;
                    var row = target + ((long)m * part.Intermediate) + first;
                    if (isBf16)
                    {
                        CpuGemv.Narrow(gate + at, (ushort*)(gate + at), width); // in place: each element is read before its half-width slot is written
                        CpuGemv.Narrow(up + at, (ushort*)(up + at), width);
                        CpuSwiGlu.Row<Bf16Elements>(gate + at, up + at, product + at, width);
                        CpuGemv.Widen((ushort*)(product + at), row, width);
                    }
                    else
                    {
                        CpuSwiGlu.Row<F32Elements>(gate + at, up + at, row, width);
                    }
                }
            }
        }

        /// <summary>Down outputs [first, last) of one expert for its rows, into y [M, H] in fp32.</summary>
        public void Down(int task, float* h, float* y, bool isBf16, bool tiles)
        {
            var part = Find(task, static p => (p.FirstDownTask, p.DownTasks));
            var first = (task - part.FirstDownTask) * part.DownPerTask;
            var last = Math.Min(part.Hidden, first + part.DownPerTask);
            CpuGemv.Block(part.Down, h + part.IntermediateOffset, y + ((long)part.FirstPair * part.Hidden), part.Intermediate, part.Hidden, first, last, part.Rows, isBf16, tiles);
        }

        private Part Find(int task, Func<Part, (int First, int Count)> range)
        {
            foreach (var part in _parts)
            {
                var (first, count) = range(part);
                if (task < first + count)
                {
                    return part;
                }
            }

            throw new ArgumentOutOfRangeException(nameof(task));
        }
    }

    /// <summary>One routed expert: its weights, its pairs [FirstPair, FirstPair + Rows), its activations in h, and its tasks in each pass.</summary>
    private readonly record struct Part(
        nint Gate, nint Up, nint Down, int FirstPair, int Rows, int Hidden, int Intermediate, long IntermediateOffset,
        int GateUpPerTask, int FirstGateUpTask, int GateUpTasks, int DownPerTask, int FirstDownTask, int DownTasks);
}
