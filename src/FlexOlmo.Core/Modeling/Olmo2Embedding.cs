using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>Token embedding table [V, H] without init (see <see cref="Olmo2Linear"/>). No scaling, as in OLMo-2.</summary>
public sealed class Olmo2Embedding : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;

    public Olmo2Embedding(long vocabSize, long hiddenSize, Device device, ScalarType dtype)
        : base(nameof(Olmo2Embedding))
    {
        _weight = new Parameter(empty([vocabSize, hiddenSize], dtype, device)); // [V, H]
        RegisterComponents();
    }

    public Parameter Weight => _weight;

    /// <summary>ids [B, T] -> [B, T, H]</summary>
    public override Tensor forward(Tensor inputIds)
    {
        var flat = _weight.index_select(0, inputIds.reshape(-1)); // [B*T, H]
        return flat.view(inputIds.size(0), inputIds.size(1), -1); // [B, T, H]
    }
}
