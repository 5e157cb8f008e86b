using FlexOlmo.Core.Kernels;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>
/// RMSNorm as transformers computes it: statistics in fp32, the weight applied in fp32 before the cast back
/// to the input dtype. TorchSharp 0.107 has no nn.RMSNorm.
/// </summary>
public sealed class Olmo2RmsNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    private readonly double _eps;

    public Olmo2RmsNorm(long width, double eps, Device device, ScalarType dtype)
        : base(nameof(Olmo2RmsNorm))
    {
        _eps = eps;
        _weight = new Parameter(ones([width], dtype, device)); // [W]
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    /// <summary>x [..., W] -> [..., W]</summary>
    public override Tensor forward(Tensor input)
    {
        if (CpuRmsNorm.Applies(input, _weight))
        {
            return CpuRmsNorm.Apply(input, _weight, _eps); // on the CPU without autograd: the same arithmetic, row by row, without the op dispatch and intermediate tensors
        }

        using var scope = NewDisposeScope();
        var x32 = input.to(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true); // [..., 1]
        var normed = x32 * rsqrt(variance + _eps);
        return (_weight * normed).to(input.dtype).MoveToOuterDisposeScope();
    }
}
