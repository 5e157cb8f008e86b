using System.Text.Json.Nodes;

namespace FlexOlmo.Core.Configuration;

/// <summary>
/// Named model shapes, exactly as the released configs have them, for random models (<c>init-model</c>), pretraining
/// and the scale benchmark. Weights never come from here: these are shapes only.
/// </summary>
public static class ModelPresets
{
    private const int Dolma2Vocabulary = 100352;
    private const int Dolma2EndOfText = 100257;
    private const int Dolma2Pad = 100277;

    /// <summary>The names, in the order help text lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = ["olmo2-1b", "olmo2-7b", "flexolmo-7x7b", "demo"];

    /// <summary>
    /// The model a command was given: exactly one of a preset name (<c>--preset</c>) and a config file (<c>--config</c>).
    /// <c>Source</c> names it for error messages.
    /// </summary>
    public static (ModelConfig Config, string Source) Resolve(string? preset, string? configPath) => (preset, configPath) switch
    {
        (not null, null) => (Get(preset), $"--preset {preset}"),
        (null, not null) => (ModelConfig.Load(configPath), configPath),
        _ => throw new ConfigException("Give exactly one of --preset NAME and --config FILE."),
    };

    /// <summary>The preset of that name; an error listing the names otherwise.</summary>
    public static ModelConfig Get(string name) => name switch
    {
        // allenai/OLMo-2-0425-1B
        "olmo2-1b" => Olmo2(hidden: 2048, layers: 16, heads: 16, intermediate: 8192),

        // allenai/Flex-public-7B-1T (an OLMo-2 7B)
        "olmo2-7b" => Olmo2(hidden: 4096, layers: 32, heads: 32, intermediate: 11008),

        // allenai/FlexOlmo-7x7B-1T: the public expert and six domain experts, 5 active per token
        "flexolmo-7x7b" => Olmo2(hidden: 4096, layers: 32, heads: 32, intermediate: 11008) with
        {
            ModelType = ModelConfig.FlexOlmo,
            NumExperts = 7,
            NumExpertsPerTok = 5,
        },

        // the demo's anchor (flexolmo demo): a 4,096-token BPE plus end-of-text and padding
        "demo" => new ModelConfig
        {
            ModelType = ModelConfig.Olmo2,
            VocabSize = 4098,
            HiddenSize = 256,
            IntermediateSize = 1024,
            NumHiddenLayers = 4,
            NumAttentionHeads = 4,
            NumKeyValueHeads = 4,
            HeadDim = 64,
            RmsNormEps = 1e-6,
            RopeTheta = 10000,
            MaxPositionEmbeddings = 256,
            EosTokenIds = [4096],
            PadTokenId = 4097,
            Raw = [],
        },
        _ => throw new ConfigException($"Unknown preset '{name}'; the presets are {string.Join(", ", Names)}."),
    };

    private static ModelConfig Olmo2(int hidden, int layers, int heads, int intermediate) => new()
    {
        ModelType = ModelConfig.Olmo2,
        VocabSize = Dolma2Vocabulary,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = heads,
        NumKeyValueHeads = heads,
        HeadDim = hidden / heads,
        RmsNormEps = 1e-6,
        RopeTheta = 500000,
        MaxPositionEmbeddings = 4096,
        EosTokenIds = [Dolma2EndOfText],
        PadTokenId = Dolma2Pad,
        Raw = new JsonObject(),
    };
}
