using System.Text.Json.Nodes;

namespace FlexOlmo.Cli.Demo;

/// <summary>A domain of the demo: Brown genres that either train the public anchor or belong to one data owner.</summary>
internal sealed record DemoDomain(string Name, string Description, IReadOnlyList<string> Genres, bool IsPublic = false)
{
    public static readonly IReadOnlyList<DemoDomain> All =
    [
        new("public", "editorial, reviews, religion, hobbies, lore, belles-lettres, government", ["cb", "cc", "cd", "ce", "cf", "cg", "ch"], IsPublic: true),
        new("news", "press reportage", ["ca"]),
        new("science", "learned and scientific writing", ["cj"]),
        new("fiction", "general, mystery, science, adventure, romance and humorous fiction", ["ck", "cl", "cm", "cn", "cp", "cr"]),
    ];

    public static IEnumerable<DemoDomain> Owners => All.Where(d => !d.IsPublic);
}

/// <summary>
/// The sizes of one demo run, chosen for a 2-core CPU: the default shows the effect clearly in about ten minutes,
/// <c>--quick</c> in a few. One text in <see cref="HeldOutEvery"/> of every genre is held out for evaluation.
/// Expert training departs from the paper's recipe in two measured ways that only matter for models this small:
/// no router z-loss (at 1e-3 it outweighs the tiny cross-entropy gains and the expert ends up worse than the
/// anchor), and router rows trained at a tenth of the learning rate (at the full rate the largest owner's row
/// learns to win every token, and the composed model loses to the anchor outside that owner's domain).
/// </summary>
internal sealed record DemoPlan(
    string Name,
    int VocabSize,
    int HiddenSize,
    int IntermediateSize,
    int Layers,
    int Heads,
    int SeqLen,
    long BatchTokens,
    long PretrainTokens,
    double PretrainLr,
    long ExpertTokens,
    double ExpertLr,
    int EmbeddingSamples,
    long EvalTokens,
    int ExpertsPerToken,
    double RouterZLoss = 0,
    double RouterLrScale = 0.1,
    int HeldOutEvery = 5)
{
    public static readonly DemoPlan Default = new(
        "default", VocabSize: 4096, HiddenSize: 256, IntermediateSize: 1024, Layers: 4, Heads: 4, SeqLen: 256, BatchTokens: 4096,
        PretrainTokens: 786_432, PretrainLr: 3e-3, ExpertTokens: 262_144, ExpertLr: 2e-3, EmbeddingSamples: 200, EvalTokens: 16_384, ExpertsPerToken: 4);

    public static readonly DemoPlan Quick = new(
        "quick", VocabSize: 2048, HiddenSize: 128, IntermediateSize: 512, Layers: 4, Heads: 4, SeqLen: 128, BatchTokens: 2048,
        PretrainTokens: 655_360, PretrainLr: 4e-3, ExpertTokens: 196_608, ExpertLr: 2e-3, EmbeddingSamples: 100, EvalTokens: 6_144, ExpertsPerToken: 4);

    /// <summary>The anchor's config.json (OLMo-2, untied embeddings) for a tokenizer with two special tokens after the vocabulary.</summary>
    public JsonObject AnchorConfig() => new()
    {
        ["architectures"] = new JsonArray("Olmo2ForCausalLM"),
        ["model_type"] = "olmo2",
        ["vocab_size"] = VocabSize + 2,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = Heads,
        ["max_position_embeddings"] = SeqLen,
        ["rms_norm_eps"] = 1e-6,
        ["rope_theta"] = 10000.0,
        ["tie_word_embeddings"] = false,
        ["eos_token_id"] = VocabSize,
        ["pad_token_id"] = VocabSize + 1,
        ["torch_dtype"] = "float32",
    };
}
