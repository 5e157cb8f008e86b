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
    public override Tensor forward(Tensor input) => Apply(input, _weight);

    /// <summary>x W^T: the decode kernel for a few rows on the CPU without autograd, libtorch otherwise.</summary>
    public static Tensor Apply(Tensor input, Tensor weight) =>
        CpuGemv.Applies(input, weight) ? CpuGemv.Linear(input, weight) : nn.functional.linear(input, weight);
}
