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

    /// <summary>x W^T: the decode kernel for a few rows (any number, in slabs, when row-invariant) on the CPU without autograd, libtorch otherwise.</summary>
    public static Tensor Apply(Tensor input, Tensor weight, LinearMode mode = LinearMode.Batched)
    {
        var rowInvariant = RowInvariant(input, mode);
        if (CpuGemv.Applies(input, weight, rowInvariant))
        {
            return CpuGemv.Linear(input, weight);
        }

        var rows = input.numel() / input.size(-1);
        if (rowInvariant && rows > 1)
        {
            // Every row exactly as a one-row call computes it (libtorch's GEMMs may block rows differently): the decode
            // kernel on slabs of rows where it applies, one row at a time otherwise.
            using var scope = NewDisposeScope();
            var flat = input.reshape(rows, input.size(-1)); // [M, in]
            var slab = CpuGemv.Applies(flat.narrow(0, 0, 1), weight, rowInvariant) ? CpuGemv.MaxRowsRowInvariant : 1;
            var parts = new List<Tensor>();
            for (var first = 0L; first < rows; first += slab)
            {
                parts.Add(Apply(flat.narrow(0, first, Math.Min(slab, rows - first)), weight, mode)); // [m, out]
            }

            var shape = TensorShapes.Of(input);
            shape[^1] = weight.size(0);
            return cat(parts, 0).view(shape).MoveToOuterDisposeScope();
        }

        return nn.functional.linear(input, weight);
    }

    /// <summary>
    /// x [..., in] times several weights [out_j, in] -> [..., out_j] each, exactly as <see cref="Apply"/> with each alone:
    /// one parallel pass of the decode kernel when it applies to every weight, one call per weight otherwise.
    /// </summary>
    public static Tensor[] ApplyMany(Tensor input, Tensor[] weights, LinearMode mode = LinearMode.Batched)
    {
        var rowInvariant = RowInvariant(input, mode);
        return weights.All(w => CpuGemv.Applies(input, w, rowInvariant))
            ? CpuGemv.Linear(input, weights)
            : weights.Select(w => Apply(input, w, mode)).ToArray();
    }

    /// <summary>Whether rows must be computed as one-row calls would: asked for, and possible (CPU, no autograd).</summary>
    internal static bool RowInvariant(Tensor input, LinearMode mode) =>
        mode == LinearMode.RowInvariant && input.device_type == TorchSharp.DeviceType.CPU && !is_grad_enabled();
}
