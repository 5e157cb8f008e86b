using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// M=input rows (tokens), K=in features, O=out features

/// <summary>
/// y = x W^T for decode-sized inputs (a few rows) on the CPU, split over cores.
/// </summary>
/// <remarks>
/// Written by hand because libtorch 2.10's CPU matrix-vector product runs on one core (measured here: 16.5 GB/s
/// with 1 or 2 threads, against 34 GB/s for a plain read) and takes a slower path still for bf16 at one row, so
/// decoding, which streams every weight once per token, ran at half the memory bandwidth. Accumulates in fp32
/// (bf16 weights are widened exactly); used only without autograd. With AVX-512 every call, one row included, runs
/// the tiles of four weight rows, which prefetch their weights a little ahead into L1 (see <c>UsesAvx512</c> and
/// <c>PrefetchBytes</c>); without it, rows go one weight row at a time in AVX2 with the same arithmetic.
/// </remarks>
internal static unsafe partial class CpuGemv
{
    /// <summary>
    /// Most input rows handled here in batched mode, either dtype. Measured faster than libtorch up to 16 rows: in fp32
    /// throughout; in bf16 since the tiles prefetch (the decode benchmark's 64 experts at 4 rows each: 40 ms against 84
    /// through libtorch's bf16 product, which uses the CPU's bf16 dot-product instruction; before, libtorch won from 4 rows).
    /// On a Xeon with AMX, libtorch's bf16 product wins from about 8 rows (at 16: 45 against 48-62 ms on those experts);
    /// the kernel keeps them all the same, so that a row's numbers never depend on how many rows share its call. Where
    /// the kernel outruns libtorch's product at any size (<see cref="OutrunsLibtorch"/>), batched products take any
    /// number of rows, in slabs of <see cref="MaxRowsRowInvariant"/>.
    /// </summary>
    public const int MaxRowsBatched = 16;

    /// <summary>
    /// Most rows in one row-invariant call (any dtype): prefill chunks and fused server steps run here, so that a
    /// token's numbers never depend on how many tokens share its pass; bounds the fp32 scratch a bf16 call needs.
    /// </summary>
    public const int MaxRowsRowInvariant = 512;

    /// <summary>
    /// Whether the kernel outruns libtorch's own product for <paramref name="dtype"/> at any number of rows on this CPU,
    /// so that batched products of many rows (a prefill, an evaluation) run here too: fp32 on an AMD CPU with AVX-512,
    /// where libtorch's MKL takes its AVX2 code path. Measured on a 2-core Zen 5 EPYC, two threads, the kernel against
    /// libtorch in GFLOP/s: [128, 1024] x [2816, 1024]^T 291 against 129, [128, 2816] x [1024, 2816]^T 212 against 113,
    /// [512, 1024] x [3072, 1024]^T 319 against 149, the benchmark model's LM head over 512 rows 125 against 91. In bf16
    /// libtorch uses the CPU's bf16 dot-product instruction, which .NET 10 does not expose, and wins from a few rows on
    /// (the same products: 219-258 against 495-638); on Intel CPUs MKL has AVX-512 paths of its own. Both keep
    /// libtorch beyond <see cref="MaxRowsBatched"/> rows.
    /// </summary>
    public static bool OutrunsLibtorch(ScalarType dtype) => dtype == ScalarType.Float32 && UsesAvx512 && IsAmd;

    /// <summary>The CPU's vendor string (CPUID leaf 0) is AMD's.</summary>
    private static readonly bool IsAmd = X86Base.IsSupported && Vendor() == "AuthenticAMD";

    /// <summary>Below this many weight elements in a pass, the calling thread computes it alone: the weights live in cache and waking another core costs more.</summary>
    internal const long ParallelElements = 1 << 18;

    private const int RowsPerPass = MaxRowsBatched;
    /// <summary>Tasks per thread in a pass: a thread that starts late finds work left, so the threads finish together.</summary>
    private const int TasksPerThread = 4;

    private const int MinOutputsPerTask = 64;

    [ThreadStatic]
    private static float[]? _scratch;

    public static bool IsSupported => Fma.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Whether <see cref="Linear(Tensor, Tensor)"/> applies to this input and weight. With <paramref name="rowInvariant"/> it takes up to
    /// <see cref="MaxRowsRowInvariant"/> rows of either dtype, since it computes every row the same way whatever their number.
    /// </summary>
    public static bool Applies(Tensor input, Tensor weight, bool rowInvariant = false) =>
        ManagedKernels.Usable(input, weight) && input.dim() > 0 && input.size(-1) > 0 && input.is_contiguous()
        && Takes(weight, input.dtype, input.size(-1), input.numel() / input.size(-1), rowInvariant);

    /// <summary>
    /// Whether the kernel takes <paramref name="weight"/> [O, K] for <paramref name="rows"/> contiguous input rows of
    /// <paramref name="dtype"/> with <paramref name="features"/> columns (the caller checks devices and autograd).
    /// </summary>
    internal static bool Takes(Tensor weight, ScalarType dtype, long features, long rows, bool rowInvariant)
    {
        if (weight.dim() != 2 || weight.size(1) != features)
        {
            return false; // a width mismatch is libtorch's to report; the kernel trusts the shapes it is given
        }

        var maxRows = rowInvariant ? MaxRowsRowInvariant : MaxRowsBatched;
        return rows <= maxRows && weight.numel() > 0 && weight.is_contiguous()
            && weight.dtype is ScalarType.Float32 or ScalarType.BFloat16 && dtype == weight.dtype
            && weight.numel() * weight.ElementSize < int.MaxValue;
    }

    /// <summary>x [..., K] (fp32 or bf16, same as W) times W [O, K] transposed -> [..., O] in x's dtype.</summary>
    public static Tensor Linear(Tensor input, Tensor weight) => Linear(input, [weight])[0];

    /// <summary>
    /// x [..., K] times each of <paramref name="weights"/> W_j [O_j, K] transposed -> [..., O_j] in x's dtype, in one
    /// parallel pass (for example q, k and v, or an expert's gate and up): one wake of the cores instead of one per
    /// weight, and every output exactly what a call with that weight alone gives.
    /// </summary>
    public static Tensor[] Linear(Tensor input, ReadOnlySpan<Tensor> weights) => Linear(input, weights, UsesAvx512);

    /// <summary>
    /// As <see cref="Linear(Tensor, ReadOnlySpan{Tensor})"/>, on the AVX-512 tiles or (<paramref name="tiles"/> false, or a CPU
    /// without AVX-512) on the AVX2 path: the same arithmetic, so the same bits.
    /// </summary>
    internal static Tensor[] Linear(Tensor input, ReadOnlySpan<Tensor> weights, bool tiles)
    {
        tiles &= UsesAvx512;
        var k = (int)weights[0].size(1);
        var rows = (int)(input.numel() / k);
        var isBf16 = input.dtype == ScalarType.BFloat16;
        var parallelism = Math.Max(1, get_num_threads());
        var shape = TensorShapes.Of(input);
        var outputs = new Tensor[weights.Length];
        var jobs = new Job[weights.Length];
        var scratchFloats = 0L;
        var elements = 0L;
        for (var j = 0; j < weights.Length; j++)
        {
            var o = (int)weights[j].size(0);
            elements += (long)o * k;
            shape[^1] = o;
            outputs[j] = HugePages.Empty(shape, input.dtype); // [..., O_j]
            var perTask = OutputsPerTask(o, parallelism, 4); // whole 4-row tiles
            jobs[j] = new Job(Address(weights[j]), Address(outputs[j]), o, perTask, (o + perTask - 1) / perTask, scratchFloats);
            scratchFloats += isBf16 ? (long)rows * o : 0; // bf16 results are summed in fp32 here, then rounded once into the output
        }

        var xFloats = isBf16 ? (long)rows * k : 0;
        var scratch = Scratch(ref _scratch, xFloats + scratchFloats);
        fixed (float* buffer = scratch)
        {
            var x = (float*)Address(input);
            if (isBf16)
            {
                Widen((ushort*)x, buffer, xFloats);
                x = buffer;
            }

            var xAddress = (nint)x;
            var resultsAddress = (nint)(buffer + xFloats);
            var tasks = jobs.Sum(job => job.Tasks);
            void Task(int task)
            {
                var j = 0;
                while (task >= jobs[j].Tasks)
                {
                    task -= jobs[j].Tasks;
                    j++;
                }

                var job = jobs[j];
                var first = task * job.PerTask;
                var last = Math.Min(job.Outputs, first + job.PerTask);
                var y = isBf16 ? (float*)resultsAddress + job.ScratchOffset : (float*)job.Output;
                Block(job.Weight, (float*)xAddress, y, k, job.Outputs, first, last, rows, isBf16, tiles);
                if (isBf16)
                {
                    for (var m = 0; m < rows; m++)
                    {
                        var row = (long)m * job.Outputs;
                        Narrow(y + row + first, (ushort*)job.Output + row + first, last - first);
                    }
                }
            }

            if (elements < ParallelElements)
            {
                for (var task = 0; task < tasks; task++)
                {
                    Task(task);
                }
            }
            else
            {
                var start = PassProfile.Start();
                KernelThreads.For(tasks, parallelism, Task);
                PassProfile.End(start, elements * (isBf16 ? 2 : 4));
            }
        }

        GC.KeepAlive(input);
        return outputs;
    }

    /// <summary>
    /// How many of a weight's <paramref name="outputs"/> one task computes: about <see cref="TasksPerThread"/> tasks per
    /// thread, at least <see cref="MinOutputsPerTask"/>, a whole multiple of <paramref name="multiple"/>.
    /// </summary>
    internal static int OutputsPerTask(int outputs, int parallelism, int multiple)
    {
        var tasks = parallelism * TasksPerThread;
        var perTask = Math.Max(MinOutputsPerTask, (outputs + tasks - 1) / tasks);
        return (perTask + multiple - 1) / multiple * multiple;
    }

    /// <summary>
    /// Outputs [<paramref name="first"/>, <paramref name="last"/>) of x [rows, K] (fp32) times W [O, K] (fp32 or bf16 at
    /// <paramref name="w"/>) transposed, into y[m * <paramref name="o"/> + output] in fp32; on the AVX-512 tiles where
    /// <paramref name="tiles"/>, on the AVX2 path otherwise, with the same arithmetic.
    /// </summary>
    internal static void Block(nint w, float* x, float* y, int k, int o, int first, int last, int rows, bool isBf16, bool tiles)
    {
        if (tiles)
        {
            if (isBf16)
            {
                Block512<Bf16Weights>(w, x, y, k, o, first, last, rows);
            }
            else
            {
                Block512<F32Weights>(w, x, y, k, o, first, last, rows);
            }

            return;
        }

        for (var m0 = 0; m0 < rows; m0 += RowsPerPass)
        {
            var count = Math.Min(RowsPerPass, rows - m0);
            if (isBf16)
            {
                Block256<Bf16Weights>(w, x, y, k, o, first, last, m0, count);
            }
            else
            {
                Block256<F32Weights>(w, x, y, k, o, first, last, m0, count);
            }
        }
    }

    /// <summary>CPUID leaf 0's vendor string: EBX, EDX, ECX as twelve ASCII characters.</summary>
    private static string Vendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> text = stackalloc byte[12];
        BitConverter.TryWriteBytes(text, ebx);
        BitConverter.TryWriteBytes(text[4..], edx);
        BitConverter.TryWriteBytes(text[8..], ecx);
        return System.Text.Encoding.ASCII.GetString(text);
    }

    internal static nint Address(Tensor t) => (nint)Unsafe.AsPointer(ref t.bytes.GetPinnableReference());

    /// <summary>
    /// <paramref name="scratch"/> (a thread's own, kept between calls: decode calls this thousands of times a second),
    /// replaced by a larger pinned array when it holds fewer than <paramref name="floats"/> floats.
    /// </summary>
    internal static float[] Scratch(ref float[]? scratch, long floats)
    {
        if (scratch is null || scratch.Length < floats)
        {
            scratch = GC.AllocateUninitializedArray<float>((int)Math.Max(floats, 1024), pinned: true);
        }

        return scratch;
    }

    /// <summary>bf16 to fp32, exactly.</summary>
    internal static void Widen(ushort* source, float* target, long count)
    {
        long i = 0;
        for (; i + 8 <= count; i += 8)
        {
            BFloat16Bits.ToSingle(Vector128.Load(source + i)).Store(target + i);
        }

        for (; i < count; i++)
        {
            target[i] = BFloat16Bits.ToSingle(source[i]);
        }
    }

    /// <summary>fp32 to bf16 with libtorch's rounding.</summary>
    internal static void Narrow(float* source, ushort* target, int count)
    {
        var i = 0;
        for (; i + 8 <= count; i += 8)
        {
            BFloat16Bits.FromSingle(Vector256.Load(source + i)).Store(target + i);
        }

        for (; i < count; i++)
        {
            target[i] = BFloat16Bits.FromSingle(source[i]);
        }
    }

    /// <summary>One weight's share of a pass: its data, its output, and how its output features split into tasks.</summary>
    private readonly record struct Job(nint Weight, nint Output, int Outputs, int PerTask, int Tasks, long ScratchOffset);

    /// <summary>
    /// The AVX2 path: each weight row times the input rows m0 .. m0 + count, four input rows at a time, then the one to
    /// three left over together, so that each weight block is loaded (and, for bf16, widened) once for them. The dot
    /// products are written out per row count for the reason <see cref="Tile4x3{T}"/> gives.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block256<T>(nint w, float* x, float* y, int k, int o, int first, int last, int m0, int count)
        where T : struct, IHalfWeights
    {
        var stride = (nint)k * T.ElementSize;
        for (var row = first; row < last; row++)
        {
            var wRow = w + (row * stride);
            var m = 0;
            for (; m + 4 <= count; m += 4)
            {
                var x0 = x + ((long)(m0 + m) * k);
                var y0 = y + ((long)(m0 + m) * o) + row;
                Dot4<T>(wRow, x0, x0 + k, x0 + (2L * k), x0 + (3L * k), k, out y0[0], out y0[o], out y0[2L * o], out y0[3L * o]);
            }

            var xs = x + ((long)(m0 + m) * k);
            var ys = y + ((long)(m0 + m) * o) + row;
            switch (count - m)
            {
                case 3:
                    Dot3<T>(wRow, xs, xs + k, xs + (2L * k), k, out ys[0], out ys[o], out ys[2L * o]);
                    break;
                case 2:
                    Dot2<T>(wRow, xs, xs + k, k, out ys[0], out ys[o]);
                    break;
                case 1:
                    ys[0] = Dot1<T>(wRow, xs, k);
                    break;
            }
        }
    }

    /// <summary>
    /// One weight row times one input row: two 8-lane chains over blocks of 16 (the lower and upper 8), the horizontal
    /// sum of their sum, then a scalar tail. Every other dot product here and every AVX-512 tile does exactly this per row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Dot1<T>(nint w, float* x, int k)
        where T : struct, IHalfWeights
    {
        Vector256<float> a = default, b = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var (low, high) = T.LoadHalves(w, i);
            a = Fma.MultiplyAdd(low, Vector256.Load(x + i), a);
            b = Fma.MultiplyAdd(high, Vector256.Load(x + i + 8), b);
        }

        return Tail<T>(a + b, w, x, i, k);
    }

    /// <summary>Two input rows at once with, per row, exactly <see cref="Dot1{T}"/>'s arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Dot2<T>(nint w, float* x0, float* x1, int k, out float s0, out float s1)
        where T : struct, IHalfWeights
    {
        Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var (low, high) = T.LoadHalves(w, i);
            a0 = Fma.MultiplyAdd(low, Vector256.Load(x0 + i), a0);
            b0 = Fma.MultiplyAdd(high, Vector256.Load(x0 + i + 8), b0);
            a1 = Fma.MultiplyAdd(low, Vector256.Load(x1 + i), a1);
            b1 = Fma.MultiplyAdd(high, Vector256.Load(x1 + i + 8), b1);
        }

        s0 = Tail<T>(a0 + b0, w, x0, i, k);
        s1 = Tail<T>(a1 + b1, w, x1, i, k);
    }

    /// <summary>Three input rows at once with, per row, exactly <see cref="Dot1{T}"/>'s arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Dot3<T>(nint w, float* x0, float* x1, float* x2, int k, out float s0, out float s1, out float s2)
        where T : struct, IHalfWeights
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, b0 = default, b1 = default, b2 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var (low, high) = T.LoadHalves(w, i);
            a0 = Fma.MultiplyAdd(low, Vector256.Load(x0 + i), a0);
            b0 = Fma.MultiplyAdd(high, Vector256.Load(x0 + i + 8), b0);
            a1 = Fma.MultiplyAdd(low, Vector256.Load(x1 + i), a1);
            b1 = Fma.MultiplyAdd(high, Vector256.Load(x1 + i + 8), b1);
            a2 = Fma.MultiplyAdd(low, Vector256.Load(x2 + i), a2);
            b2 = Fma.MultiplyAdd(high, Vector256.Load(x2 + i + 8), b2);
        }

        s0 = Tail<T>(a0 + b0, w, x0, i, k);
        s1 = Tail<T>(a1 + b1, w, x1, i, k);
        s2 = Tail<T>(a2 + b2, w, x2, i, k);
    }

    /// <summary>Four input rows at once with, per row, exactly <see cref="Dot1{T}"/>'s arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Dot4<T>(nint w, float* x0, float* x1, float* x2, float* x3, int k, out float s0, out float s1, out float s2, out float s3)
        where T : struct, IHalfWeights
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        var i = 0;
        for (; i + 16 <= k; i += 16)
        {
            var (low, high) = T.LoadHalves(w, i);
            a0 = Fma.MultiplyAdd(low, Vector256.Load(x0 + i), a0);
            b0 = Fma.MultiplyAdd(high, Vector256.Load(x0 + i + 8), b0);
            a1 = Fma.MultiplyAdd(low, Vector256.Load(x1 + i), a1);
            b1 = Fma.MultiplyAdd(high, Vector256.Load(x1 + i + 8), b1);
            a2 = Fma.MultiplyAdd(low, Vector256.Load(x2 + i), a2);
            b2 = Fma.MultiplyAdd(high, Vector256.Load(x2 + i + 8), b2);
            a3 = Fma.MultiplyAdd(low, Vector256.Load(x3 + i), a3);
            b3 = Fma.MultiplyAdd(high, Vector256.Load(x3 + i + 8), b3);
        }

        s0 = Tail<T>(a0 + b0, w, x0, i, k);
        s1 = Tail<T>(a1 + b1, w, x1, i, k);
        s2 = Tail<T>(a2 + b2, w, x2, i, k);
        s3 = Tail<T>(a3 + b3, w, x3, i, k);
    }

    /// <summary>The horizontal sum of <paramref name="chains"/> (even chain + odd chain), then the scalar tail from <paramref name="i"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail<T>(Vector256<float> chains, nint w, float* x, int i, int k)
        where T : struct, IHalfWeights
    {
        var sum = Vector256.Sum(chains);
        for (; i < k; i++)
        {
            sum += T.Load1(w, i) * x[i];
        }

        return sum;
    }

    /// <summary>How weights of one storage dtype become fp32, for the AVX2 path: one implementation per dtype, specialised by the JIT.</summary>
    private interface IHalfWeights
    {
        static abstract int ElementSize { get; }

        /// <summary>Sixteen weights from element <paramref name="i"/> on, as two fp32 halves of eight.</summary>
        static abstract (Vector256<float> Low, Vector256<float> High) LoadHalves(nint row, int i);

        static abstract float Load1(nint row, int i);
    }

    /// <summary>As <see cref="IHalfWeights"/>, with the sixteen in one AVX-512 vector for the tiles (called only where <see cref="UsesAvx512"/>).</summary>
    private interface IWideWeights : IHalfWeights
    {
        static abstract Vector512<float> Load16(nint row, int i);
    }

    private readonly struct F32Weights : IWideWeights
    {
        public static int ElementSize => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> Low, Vector256<float> High) LoadHalves(nint row, int i) =>
            (Vector256.Load((float*)row + i), Vector256.Load((float*)row + i + 8));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint row, int i) => Vector512.Load((float*)row + i);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load1(nint row, int i) => ((float*)row)[i];
    }

    /// <summary>bf16 is the upper half of an fp32: widening to 32 bits and shifting left by 16 is exact.</summary>
    private readonly struct Bf16Weights : IWideWeights
    {
        public static int ElementSize => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> Low, Vector256<float> High) LoadHalves(nint row, int i) =>
            (BFloat16Bits.ToSingle(Vector128.Load((ushort*)row + i)), BFloat16Bits.ToSingle(Vector128.Load((ushort*)row + i + 8)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load16(nint row, int i) => BFloat16Bits.ToSingle(Vector256.Load((ushort*)row + i));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load1(nint row, int i) => BFloat16Bits.ToSingle(((ushort*)row)[i]);
    }
}
