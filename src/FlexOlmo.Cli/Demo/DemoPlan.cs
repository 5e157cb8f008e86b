using System.Text;
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

    /// <summary>A plan for tests only: synthetic text, a model of a few thousand parameters, about a minute for demo and study together.</summary>
    public static readonly DemoPlan Tiny = new(
        "tiny", VocabSize: 300, HiddenSize: 32, IntermediateSize: 64, Layers: 2, Heads: 2, SeqLen: 32, BatchTokens: 512,
        PretrainTokens: 32_768, PretrainLr: 1e-2, ExpertTokens: 16_384, ExpertLr: 5e-3, EmbeddingSamples: 20, EvalTokens: 2_048, ExpertsPerToken: 4);

    /// <summary>The plan the demo's and the study's flags choose (the hidden --tiny wins over --quick).</summary>
    public static DemoPlan Choose(bool quick, bool tiny) => tiny ? Tiny : quick ? Quick : Default;

    /// <summary>The flags that choose this plan, for a command that runs the demo.</summary>
    public string[] Flags => this == Tiny ? ["--tiny"] : this == Quick ? ["--quick"] : [];

    /// <summary>Tokens of router tuning in the study (the router rows alone learn fast; a quarter of an expert's training).</summary>
    public long RouterTuningTokens => ExpertTokens / 4;

    /// <summary>The arguments of one owner's <c>train-expert</c>, shared by the demo and the study's ablations.</summary>
    public IReadOnlyList<string> TrainExpertArguments(string anchor, string data, DemoDomain owner, string output, string tokenCache, string device, string? ablation = null)
    {
        var args = new List<string>
        {
            "train-expert", "--anchor", anchor, "--data", data, "--name", owner.Name, "--out", output,
            "--owner", $"{owner.Name} owner", "--license", "CC-BY-4.0", "--description", $"Brown corpus {owner.Description}",
            "--seq-len", CommandSteps.I(SeqLen), "--batch-tokens", CommandSteps.I(BatchTokens), "--tokens", CommandSteps.I(ExpertTokens), "--lr", CommandSteps.D(ExpertLr),
            "--router-z-loss", CommandSteps.D(RouterZLoss), "--router-lr-scale", CommandSteps.D(RouterLrScale), "--samples", CommandSteps.I(EmbeddingSamples), "--val-fraction", "0.05",
            "--checkpoint-every", "0", "--token-cache", tokenCache, "--device", device,
        };
        if (ablation is not null)
        {
            args.AddRange(["--ablation", ablation]);
        }

        return args;
    }

    /// <summary>
    /// A recipe of the demo's anchor and experts: from the registry (signed, with the owners' public keys) when
    /// <paramref name="registry"/> is given, else from local folders (unsigned). Paths are relative to the recipe.
    /// </summary>
    public static string RecipeText(string name, int expertsPerToken, string anchor, IReadOnlyList<string> experts, string? registry, string? keys, string output)
    {
        var text = new StringBuilder();
        text.AppendLine("# Written by 'flexolmo demo' or 'flexolmo study': the experts whose owners opted in.");
        text.AppendLine($"name: {name}");
        text.AppendLine("description: The Brown public anchor with the news, science and fiction owners' experts.");
        if (registry is not null)
        {
            text.AppendLine($"registry: {registry}");
        }

        text.AppendLine("anchor:");
        text.AppendLine($"  source: \"{anchor}\"");
        text.AppendLine("experts:");
        foreach (var expert in experts)
        {
            text.AppendLine($"  - source: {expert}");
        }

        text.AppendLine(FormattableString.Invariant($"experts_per_token: {expertsPerToken}"));
        if (keys is not null)
        {
            text.AppendLine("trusted_keys:");
            foreach (var owner in DemoDomain.Owners)
            {
                text.AppendLine($"  - {keys}/{owner.Name}.key.pub");
            }
        }

        text.AppendLine("output:");
        text.AppendLine($"  path: {output}");
        return text.ToString();
    }

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
