using FlexOlmo.Core.Kernels;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>
/// A bias-free linear layer whose weight starts uninitialised. Identical to nn.Linear(bias: false) except that
/// construction does no random init: checkpoint loading overwrites every weight, and initialising billions of
/// them first would double load time. Training from scratch calls <see cref="Olmo2ForCausalLM.InitializeWeights"/>.
/// </summary>
public sealed class Olmo2Linear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;

    public Olmo2Linear(long inFeatures, long outFeatures, Device device, ScalarType dtype)
        : base(nameof(Olmo2Linear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _weight = new Parameter(empty([outFeatures, inFeatures], dtype, device)); // [out, in]
        RegisterComponents();
    }

    public long InFeatures { get; }

    public long OutFeatures { get; }

    public Parameter Weight => _weight;

    /// <summary>x [..., in] -> [..., out]</summary>
    public override Tensor forward(Tensor input) => Apply(input, _weight, LinearMode.Batched);

    /// <summary>x [..., in] -> [..., out], with the rows treated as <paramref name="mode"/> says.</summary>
    public Tensor Compute(Tensor input, LinearMode mode) => Apply(input, _weight, mode);

    /// <summary>
    /// x W^T: the decode kernel for a few rows (any number, in slabs, when row-invariant or where it outruns libtorch, see
    /// <see cref="CpuGemv.OutrunsLibtorch"/>) on the CPU without autograd, libtorch otherwise.
    /// </summary>
    public static Tensor Apply(Tensor input, Tensor weight, LinearMode mode = LinearMode.Batched)
    {
        var rowInvariant = RowInvariant(input, mode);
        var anyRows = AnyRowsOnKernel(input, rowInvariant);
        if (CpuGemv.Applies(input, weight, anyRows))
        {
            return CpuGemv.Linear(input, weight);
        }

        var rows = input.numel() / input.size(-1);
        if (anyRows && rows > 1)
        {
            // More rows than one kernel call takes: the kernel on slabs of rows where it applies. Where it does not,
            // row-invariant products go one row at a time (libtorch's GEMMs may block rows differently), batched ones
            // to libtorch whole.
            using var scope = NewDisposeScope();
            var flat = input.reshape(rows, input.size(-1)).contiguous(); // [M, in]; an expanded input (a stride of 0) is copied, so that every slab is contiguous as the first row is
            var kernel = CpuGemv.Applies(flat.narrow(0, 0, 1), weight, rowInvariant: true);
            if (kernel || rowInvariant)
            {
                var slab = kernel ? CpuGemv.MaxRowsRowInvariant : 1;
                var output = HugePages.Empty([rows, weight.size(0)], input.dtype); // [M, out]
                for (var first = 0L; first < rows; first += slab)
                {
                    var count = Math.Min(slab, rows - first);
                    var part = Apply(flat.narrow(0, first, count), weight, mode); // [m, out]
                    output.narrow(0, first, count).copy_(part);
                    part.Dispose(); // one slab's output at a time besides the whole: an evaluation's logits can take gigabytes
                }

                var shape = TensorShapes.Of(input);
                shape[^1] = weight.size(0);
                return output.view(shape).MoveToOuterDisposeScope();
            }
        }

        return LibtorchLinear(input, weight);
    }

    /// <summary>
    /// libtorch's product. An output that glibc would map fresh (<see cref="HugePages.FreshBytes"/>, such as a prefill's
    /// bf16 logits) goes into memory advised onto huge pages, through <c>addmm_</c> with beta 0: the bits of
    /// <c>linear</c> (measured equal), without faulting in 4 KB pages. The benchmark model's LM head over 512 rows took
    /// 147 ms instead of 243 in bf16, and 386 instead of 579 in fp32 on libtorch. A large bf16 product is split by output
    /// columns over <see cref="LibtorchLanes"/> (<see cref="SplitsOverLanes"/>).
    /// </summary>
    private static Tensor LibtorchLinear(Tensor input, Tensor weight)
    {
        if (!OnCpuWithoutAutograd(input) || weight.dim() != 2 || input.dim() == 0
            || input.size(-1) != weight.size(1) || input.size(-1) == 0 || input.dtype != weight.dtype
            || weight.device_type != TorchSharp.DeviceType.CPU)
        {
            return nn.functional.linear(input, weight); // libtorch reports any mismatch
        }

        var rows = input.numel() / input.size(-1);
        var columns = weight.size(0);
        var lanes = SplitsOverLanes(input.dtype, rows, input.size(-1), columns);
        if (lanes == 1 && rows * columns * input.ElementSize < HugePages.FreshBytes)
        {
            return nn.functional.linear(input, weight);
        }

        var shape = TensorShapes.Of(input);
        shape[^1] = columns;
        using var output = HugePages.Empty([rows, columns], input.dtype); // [M, out]
        using var flat = input.reshape(rows, input.size(-1)); // [M, in]
        if (lanes == 1)
        {
            using var transposed = weight.t(); // [in, out]
            output.addmm_(flat, transposed, beta: 0, alpha: 1);
        }
        else
        {
            var part = (columns + lanes - 1) / lanes;
            part = (part + LaneColumnMultiple - 1) / LaneColumnMultiple * LaneColumnMultiple;
            var parts = (int)((columns + part - 1) / part);
            LibtorchLanes.Run(parts, lanes, i =>
            {
                var first = i * part;
                var count = Math.Min(part, columns - first);
                using var slice = output.narrow(1, first, count); // [M, count] of the whole output's rows
                using var weights = weight.narrow(0, first, count); // [count, in]
                using var transposed = weights.t(); // [in, count]
                slice.addmm_(flat, transposed, beta: 0, alpha: 1);
            });
        }

        return output.view(shape);
    }

    /// <summary>Products from this many multiply-adds (M x in x out) are split over lanes: a lane's wake costs tens of µs.</summary>
    internal const long MinLaneWork = 32L << 20;

    /// <summary>Each lane's columns are a multiple of this, so that no lane's part ends inside another's cache line or vector.</summary>
    private const long LaneColumnMultiple = 64;

    /// <summary>
    /// How many lanes a libtorch product of [M, in] by [in, out] takes: bf16 from <see cref="MinLaneWork"/> multiply-adds
    /// (fp32 products may be MKL's, which keeps thread counts of its own), else one. Each lane computes whole output
    /// columns with one thread, and libtorch splits a product's columns, not its sums, over its threads: the bits are the
    /// whole product's (checked for 340-2,048 rows, in 1,024-2,048, out 1,024-100,352). Measured on a 2-core Zen 5 VM, halves
    /// on two lanes took 0.84-0.92x the time of the whole on two threads: 512 x 1,024 by 1,024 x 1,024 1.59 against 1.84
    /// ms, the benchmark model's LM head over 512 rows 77 against 88 ms, an olmo2-1b LM head 301 against 320 ms.
    /// </summary>
    internal static int SplitsOverLanes(ScalarType dtype, long rows, long inFeatures, long outFeatures) =>
        dtype == ScalarType.BFloat16 && rows * inFeatures * outFeatures >= MinLaneWork && outFeatures >= 2 * LaneColumnMultiple
            ? LibtorchLanes.For(2)
            : 1;

    /// <summary>
    /// x [..., in] times several weights [out_j, in] -> [..., out_j] each, exactly as <see cref="Apply"/> with each alone:
    /// one parallel pass of the decode kernel when it applies to every weight, one call per weight otherwise.
    /// </summary>
    public static Tensor[] ApplyMany(Tensor input, Tensor[] weights, LinearMode mode = LinearMode.Batched)
    {
        var anyRows = AnyRowsOnKernel(input, RowInvariant(input, mode));
        return weights.All(w => CpuGemv.Applies(input, w, anyRows))
            ? CpuGemv.Linear(input, weights)
            : weights.Select(w => Apply(input, w, mode)).ToArray();
    }

    /// <summary>
    /// Whether the decode kernel takes any number of rows of <paramref name="input"/>, not just decode-sized ones: for
    /// row-invariant products, and for batched ones where it outruns libtorch's product (<see cref="CpuGemv.OutrunsLibtorch"/>)
    /// and can run (CPU, no autograd).
    /// </summary>
    private static bool AnyRowsOnKernel(Tensor input, bool rowInvariant) =>
        rowInvariant || (CpuGemv.OutrunsLibtorch(input.dtype) && OnCpuWithoutAutograd(input));

    /// <summary>Whether rows must be computed as one-row calls would: asked for, and possible (CPU, no autograd).</summary>
    internal static bool RowInvariant(Tensor input, LinearMode mode) => mode == LinearMode.RowInvariant && OnCpuWithoutAutograd(input);

    /// <summary>The input lives in CPU memory and autograd is off: where this class may compute outside libtorch's <c>linear</c>.</summary>
    private static bool OnCpuWithoutAutograd(Tensor input) => input.device_type == TorchSharp.DeviceType.CPU && !is_grad_enabled();
}
