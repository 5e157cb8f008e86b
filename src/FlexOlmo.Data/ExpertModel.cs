using System.Text.RegularExpressions;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Data;

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

    /// <summary>Builds the model from the anchor checkpoint and the two router embeddings (each [H], for every layer).</summary>
    public static Olmo2ForCausalLM Build(ModelConfig anchorConfig, SafetensorsCheckpoint anchorWeights, float[] publicEmbedding, float[] ownerEmbedding, Device device, ScalarType dtype) =>
        Build(anchorConfig, anchorWeights, Enumerable.Repeat(publicEmbedding, anchorConfig.NumHiddenLayers).ToArray(), ownerEmbedding, device, dtype);

    /// <summary>
    /// Builds the model from the anchor checkpoint, the anchor's public router row of each layer (r_pub, [L][H]) and
    /// the owner's initial row r_i [H].
    /// </summary>
    public static Olmo2ForCausalLM Build(ModelConfig anchorConfig, SafetensorsCheckpoint anchorWeights, IReadOnlyList<float[]> publicRows, float[] ownerEmbedding, Device device, ScalarType dtype)
    {
        if (anchorConfig.IsMoe)
        {
            throw new DataException("The anchor must be a dense OLMo-2 model (model_type olmo2); this one is already a mixture of experts.");
        }

        var config = ConfigFor(anchorConfig);
        var routers = Enumerable.Range(0, config.NumHiddenLayers).Select(TensorNames.Router).ToHashSet();
        var model = CheckpointLoader.Create(config, anchorWeights, device, dtype, AnchorName, routers);
        using var noGrad = no_grad();
        foreach (var (layer, index) in model.Model.Layers.Select((l, i) => (l, i)))
        {
            var moe = layer.Moe!;
            using var rows = tensor(publicRows[index].Concat(ownerEmbedding).ToArray(), [2, config.HiddenSize]).to(dtype).to(device); // [E, H]
            moe.Gate.Weight.copy_(rows);
            moe.RouterBias = new Parameter(zeros([2], ScalarType.Float32, device));
        }

        return model;
    }

    /// <summary>
    /// The 2-expert model of a published package on its anchor: the anchor's weights, r_pub, and the package's FFN
    /// and router rows per layer. The router bias is left at zero, as composition leaves it out of routing, so this
    /// model routes exactly as the package will inside a composed model.
    /// </summary>
    public static Olmo2ForCausalLM Load(AnchorPackage anchor, ExpertPackage expert, Device device, ScalarType? dtype = null)
    {
        var manifest = expert.Manifest.Value;
        if (manifest.Anchor.Fingerprint != anchor.Fingerprint)
        {
            throw new DataException(
                $"{expert.Folder}: expert {manifest.Reference} was trained against anchor {manifest.Anchor.Name ?? "?"} ({manifest.Anchor.Fingerprint}), " +
                $"but {anchor.Folder} is {anchor.Manifest.Value.Name} ({anchor.Fingerprint}); give the anchor it was trained on.");
        }

        var anchorConfig = ModelConfig.Load(anchor.ModelFolder);
        var publicRows = RouterEmbeddingFile.ReadRows(anchor.RouterEmbeddingPath, anchorConfig.NumHiddenLayers, anchorConfig.HiddenSize);
        using var anchorWeights = SafetensorsCheckpoint.Open(anchor.ModelFolder);
        using var expertWeights = SafetensorsCheckpoint.Open(expert.WeightsPath);
        var model = Build(anchorConfig, anchorWeights, publicRows, publicRows[0], device, dtype ?? TorchRuntime.ResolveDType("auto", anchorConfig.StorageDType));
        try
        {
            using var noGrad = no_grad();
            foreach (var (layer, index) in model.Model.Layers.Select((l, i) => (l, i)))
            {
                var moe = layer.Moe!;
                var owner = moe.Experts[OwnerExpert];
                Copy(expertWeights, ExpertTensorNames.Ffn(index, "gate_proj"), owner.GateProj.Weight);
                Copy(expertWeights, ExpertTensorNames.Ffn(index, "up_proj"), owner.UpProj.Weight);
                Copy(expertWeights, ExpertTensorNames.Ffn(index, "down_proj"), owner.DownProj.Weight);
                using var routerRow = moe.Gate.Weight[OwnerExpert]; // [H], a view of the router's row
                Copy(expertWeights, ExpertTensorNames.RouterEmbedding(index), routerRow);
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }

        return model;
    }

    private static void Copy(SafetensorsCheckpoint source, string name, Tensor target)
    {
        if (!source.Contains(name))
        {
            throw new DataException($"{source.Source}: has no tensor '{name}'; the expert package is incomplete or from another tool.");
        }

        var (file, info) = source.Locate(name);
        if (!info.Shape.SequenceEqual(target.shape))
        {
            throw new DataException($"{source.Source}: '{name}' has shape [{string.Join(",", info.Shape)}], the anchor needs [{string.Join(",", target.shape)}].");
        }

        using var tensor = TensorBytes.Read(file, info, 0, info.Shape);
        target.copy_(tensor.to(target.dtype));
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
