using System.Globalization;
using System.Text.RegularExpressions;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>Hugging Face tensor names of OLMo-2 / FlexOlmo checkpoints.</summary>
public static partial class TensorNames
{
    public const string EmbedTokens = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";

    public static string Layer(int layer) => $"model.layers.{layer}";

    /// <summary>The router of a MoE layer, [E, H].</summary>
    public static string Router(int layer) => $"model.layers.{layer}.mlp.gate.weight";

    /// <summary>One expert's projection in the per-expert (on-disk) layout; <paramref name="projection"/> is gate_proj, up_proj or down_proj.</summary>
    public static string Expert(int layer, int expert, string projection) => $"model.layers.{layer}.mlp.experts.{expert}.{projection}.weight";

    /// <summary>A dense MLP projection.</summary>
    public static string DenseMlp(int layer, string projection) => $"model.layers.{layer}.mlp.{projection}.weight";

    /// <summary>Fused layout (transformers v5 in memory): [E, 2I, H], gate rows first.</summary>
    public static string FusedGateUp(int layer) => $"model.layers.{layer}.mlp.experts.gate_up_proj";

    /// <summary>Fused layout: [E, H, I].</summary>
    public static string FusedDown(int layer) => $"model.layers.{layer}.mlp.experts.down_proj";

    public static readonly string[] FfnProjections = ["gate_proj", "up_proj", "down_proj"];

    /// <summary>Parses a per-expert name into (layer, expert, projection).</summary>
    public static (int Layer, int Expert, string Projection)? ParseExpert(string name)
    {
        var match = ExpertPattern().Match(name);
        return match.Success
            ? (int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture), match.Groups[3].Value)
            : null;
    }

    /// <summary>Buffers some older checkpoints carry that carry no weights (recomputed at load).</summary>
    public static bool IsIgnorable(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    [GeneratedRegex(@"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$")]
    private static partial Regex ExpertPattern();
}
