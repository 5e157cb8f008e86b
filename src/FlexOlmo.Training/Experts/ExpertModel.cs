using System.Text.RegularExpressions;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats.Safetensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Experts;

// E=2 experts (0 = public, 1 = the owner's), H=hidden

/// <summary>
/// The model an owner trains (method §2): the anchor turned into a 2-expert FlexOlmo whose two FFNs both start as
/// copies of the anchor's FFN, routed top-2 of 2 without renormalisation, with router rows [r_pub; r_i] and a
/// per-layer bias b_i applied as min(b_i, 0) to the owner's expert only.
/// </summary>
public static partial class ExpertModel
{
    public const int PublicExpert = 0;
    public const int OwnerExpert = 1;

    /// <summary>The 2-expert config made from a dense anchor config.</summary>
    public static ModelConfig ConfigFor(ModelConfig anchor) => anchor with
    {
        ModelType = ModelConfig.FlexOlmo,
        NumExperts = 2,
        NumExpertsPerTok = 2,
        NormTopkProb = false,
    };

    /// <summary>Builds the model from the anchor checkpoint and the two router embeddings (each [H]).</summary>
    public static Olmo2ForCausalLM Build(ModelConfig anchorConfig, SafetensorsCheckpoint anchorWeights, float[] publicEmbedding, float[] ownerEmbedding, Device device, ScalarType dtype)
    {
        if (anchorConfig.IsMoe)
        {
            throw new TrainingException("The anchor must be a dense OLMo-2 model (model_type olmo2); this one is already a mixture of experts.");
        }

        var config = ConfigFor(anchorConfig);
        var model = new Olmo2ForCausalLM(config, device, dtype);
        var routers = Enumerable.Range(0, config.NumHiddenLayers).Select(TensorNames.Router).ToHashSet();
        CheckpointLoader.LoadInto(model, anchorWeights, AnchorName, routers);
        using var noGrad = no_grad();
        using var rows = tensor(publicEmbedding.Concat(ownerEmbedding).ToArray(), [2, config.HiddenSize]).to(dtype).to(device); // [E, H]
        foreach (var layer in model.Model.Layers)
        {
            var moe = layer.Moe!;
            moe.Gate.Weight.copy_(rows);
            moe.RouterBias = new Parameter(zeros([2], ScalarType.Float32, device));
        }

        return model;
    }

    /// <summary>The anchor tensor a parameter of the 2-expert model starts from (both experts read the dense MLP).</summary>
    public static string AnchorName(string name)
    {
        var match = ExpertPattern().Match(name);
        return match.Success ? $"model.layers.{match.Groups[1].Value}.mlp.{match.Groups[2].Value}.weight" : name;
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.mlp\.experts\.[01]\.(gate_proj|up_proj|down_proj)\.weight$")]
    private static partial Regex ExpertPattern();
}
