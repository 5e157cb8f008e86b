using FlexOlmo.Core.Kernels;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>SwiGLU feed-forward: <c>down(silu(gate(x)) * up(x))</c>. The dense OLMo-2 MLP and one FlexOlmo expert.</summary>
public sealed class Olmo2Mlp : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "gate_proj")]
    private readonly Olmo2Linear _gateProj;
    [ComponentName(Name = "up_proj")]
    private readonly Olmo2Linear _upProj;
    [ComponentName(Name = "down_proj")]
    private readonly Olmo2Linear _downProj;

    public Olmo2Mlp(long hiddenSize, long intermediateSize, Device device, ScalarType dtype)
        : base(nameof(Olmo2Mlp))
    {
        _gateProj = new Olmo2Linear(hiddenSize, intermediateSize, device, dtype); // [I, H]
        _upProj = new Olmo2Linear(hiddenSize, intermediateSize, device, dtype); // [I, H]
        _downProj = new Olmo2Linear(intermediateSize, hiddenSize, device, dtype); // [H, I]
        RegisterComponents();
    }

    public Olmo2Linear GateProj => _gateProj;

    public Olmo2Linear UpProj => _upProj;

    public Olmo2Linear DownProj => _downProj;

    /// <summary>x [..., H] -> [..., H]</summary>
    public override Tensor forward(Tensor input) => Compute(input, LinearMode.Batched);

    /// <summary>x [..., H] -> [..., H], with the rows treated as <paramref name="mode"/> says.</summary>
    public Tensor Compute(Tensor input, LinearMode mode)
    {
        using var scope = NewDisposeScope();
        var projected = Olmo2Linear.ApplyMany(input, [_gateProj.Weight, _upProj.Weight], mode); // gate, up: [..., I] each
        var gated = CpuSwiGlu.Applies(projected[0], projected[1])
            ? CpuSwiGlu.Apply(projected[0], projected[1]) // [..., I]: on the CPU without autograd, any number of rows
            : nn.functional.silu(projected[0]) * projected[1]; // [..., I]
        return _downProj.Compute(gated, mode).MoveToOuterDisposeScope(); // [..., H]
    }
}
