using FlexOlmo.Composition;
using FlexOlmo.Packages;
using FlexOlmo.Testing;

namespace FlexOlmo.Evaluation.Tests;

/// <summary>The tiny anchor, two experts (counting, chemistry), a model composed of both, and held-out text per domain.</summary>
public sealed class EvaluationFixture : IDisposable
{
    public EvaluationFixture()
    {
        Training = new TrainingFixture();
        Counting = Training.TrainExpert("counting", Training.CountingData, steps: 25);
        Chemistry = Training.TrainExpert("chemistry", Training.ChemistryData, steps: 25);
        Composed = Compose("both", [Counting.Folder, Chemistry.Folder], k: 3);
        var heldOut = Training.Root.Sub("heldout");
        PublicText = SyntheticCorpus.WriteJsonl(Path.Combine(heldOut, "public.jsonl"), SyntheticCorpus.Public(40, 101));
        CountingText = SyntheticCorpus.WriteJsonl(Path.Combine(heldOut, "counting.jsonl"), SyntheticCorpus.Counting(40, 102));
        ChemistryText = SyntheticCorpus.WriteJsonl(Path.Combine(heldOut, "chemistry.jsonl"), SyntheticCorpus.Chemistry(40, 103));
    }

    public TrainingFixture Training { get; }

    public ExpertPackage Counting { get; }

    public ExpertPackage Chemistry { get; }

    public string Composed { get; }

    public string PublicText { get; }

    public string CountingText { get; }

    public string ChemistryText { get; }

    public string TokenCache => Training.TokenCache;

    public IReadOnlyList<EvaluationDomain> Domains =>
        [new("public", [PublicText]), new("counting", [CountingText]), new("chemistry", [ChemistryText])];

    /// <summary>Composes the anchor with expert package folders into a new model folder.</summary>
    public string Compose(string name, IReadOnlyList<string> experts, int k)
    {
        var folder = Training.Root.Sub($"recipes/{name}-{Guid.NewGuid():N}");
        var recipe = Path.Combine(folder, "recipe.yaml");
        File.WriteAllText(recipe, $"""
            name: {name}
            anchor:
              source: {Training.AnchorFolder}
            experts:
            {string.Join("\n", experts.Select(e => $"  - source: {e}"))}
            experts_per_token: {k}
            output:
              path: model
            """);
        return Composer.ComposeAsync(Recipe.Load(recipe), null, null, null, CancellationToken.None).GetAwaiter().GetResult().Folder;
    }

    public EvaluationReport Evaluate(string model, IReadOnlyList<string>? masks = null, string? anchor = null, int seqLen = 32, long maxTokens = 512) =>
        PerplexityEvaluator.Evaluate(
            new EvaluationRequest { Model = model, Anchor = anchor, Domains = Domains, Masks = masks, SeqLen = seqLen, MaxTokens = maxTokens, BatchSize = 4, TokenCache = TokenCache },
            null,
            null,
            CancellationToken.None);

    public void Dispose() => Training.Dispose();
}

[CollectionDefinition(Name)]
public sealed class EvaluationCollection : ICollectionFixture<EvaluationFixture>
{
    public const string Name = "evaluation";
}
