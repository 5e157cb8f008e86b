using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Composition.Tests;

/// <summary>Every recipe error names the recipe file, the line and the field, and says what is wrong.</summary>
[Collection(CompositionCollection.Name)]
public sealed class RecipeErrorTests(CompositionFixture fixture)
{
    [Fact]
    public Task UnknownKey_IsNamedWithItsLine() => Expect(
        $"""
        name: x
        anchor: {Anchor}
        experts:
          - source: {fixture.Counting.Folder}
        expert_per_token: 2
        """,
        line: 5,
        "expert_per_token: is not a recipe field");

    [Fact]
    public Task MissingAnchor_IsReported() => Expect(
        $"""
        name: x
        experts:
          - source: {fixture.Counting.Folder}
        """,
        line: 1,
        "anchor");

    [Fact]
    public Task TopK_LargerThanTheExperts_IsRefused() => Expect(
        $"""
        name: x
        anchor: {Anchor}
        experts:
          - source: {fixture.Counting.Folder}
        experts_per_token: 3
        """,
        line: 5,
        "experts_per_token: 3 is larger than the number of experts (1 opted in + the public one = 2)");

    [Fact]
    public Task DuplicateExperts_AreRefused() => Expect(
        $"""
        name: x
        anchor: {Anchor}
        experts:
          - source: {fixture.Counting.Folder}
          - source: {fixture.Chemistry.Folder}
          - source: {fixture.Counting.Folder}
        """,
        line: 6,
        "experts.2.source: '");

    [Fact]
    public Task UnknownExpert_InTheRegistry_IsNamed() => Expect(
        $"""
        name: x
        registry: {fixture.RegistryFolder}
        anchor: {Anchor}
        experts:
          - source: counting@1.0.0
          - source: astronomy
        """,
        line: 6,
        "experts.1.source: No expert 'astronomy'");

    [Fact]
    public async Task RevokedExpert_IsRefusedWithTheOwnersReason()
    {
        var registry = new ExpertRegistry(new LocalStore(fixture.RegistryFolder));
        var copy = fixture.CopyPackage(fixture.Chemistry.Folder, manifest => manifest["version"] = "9.9.9");
        await registry.PublishExpertAsync(copy, null, null, CancellationToken.None);
        await registry.RevokeAsync("chemistry@9.9.9", "the lab withdrew consent", null, CancellationToken.None);

        await Expect(
            $"""
            name: x
            registry: {fixture.RegistryFolder}
            anchor: {Anchor}
            experts:
              - source: chemistry@9.9.9
            """,
            line: 5,
            "experts.0.source: chemistry@9.9.9 was withdrawn");
        await Expect(
            $"""
            name: x
            registry: {fixture.RegistryFolder}
            anchor: {Anchor}
            experts:
              - source: {copy}
            """,
            line: 5,
            "the lab withdrew consent");
    }

    [Fact]
    public async Task UntrustedOrUnsignedExperts_AreRefused_WhenTrustedKeysAreListed()
    {
        await Expect(
            $"""
            name: x
            registry: {fixture.RegistryFolder}
            anchor: {Anchor}
            experts:
              - source: counting@1.0.0
            trusted_keys: [{Path.Combine(fixture.Keys, "stranger.key.pub")}]
            """,
            line: 5,
            "not among the trusted keys");
        await Expect(
            $"""
            name: x
            anchor: {Anchor}
            experts:
              - source: {fixture.Chemistry.Folder}
            trusted_keys: [{Path.Combine(fixture.Keys, "owner.key.pub")}]
            """,
            line: 4,
            "is not signed");
    }

    [Fact]
    public Task AnchorMismatch_IsRefused() => Expect(
        $"""
        name: x
        anchor: {Anchor}
        experts:
          - source: {fixture.CopyPackage(fixture.Counting.Folder, m => m["anchor"]!["fingerprint"] = "sha256:" + new string('a', 64))}
        """,
        line: 4,
        "was trained against anchor");

    [Fact]
    public Task PinnedFingerprintOrManifestHash_MustMatch() => Expect(
        $"""
        name: x
        anchor: {Anchor}
        experts:
          - source: {fixture.Counting.Folder}
            sha256: "sha256:{new string('b', 64)}"
        """,
        line: 5,
        "experts.0.sha256: the recipe pins");

    [Fact]
    public Task TamperedExpertWeights_AreCaughtWhileComposing_AndNothingIsWritten()
    {
        var copy = fixture.CopyPackage(fixture.Counting.Folder, _ => { });
        var weights = Path.Combine(copy, ExpertTensorNames.WeightsFile);
        var bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(weights, bytes);
        return Expect(
            $"""
            name: x
            anchor: {Anchor}
            experts:
              - source: {copy}
            """,
            line: 4,
            "expert.safetensors: content does not match the manifest");
    }

    [Fact]
    public Task InvalidYaml_IsReportedWithItsLine() => Expect(
        """
        name: x
        anchor: [unclosed
        """,
        line: 3,
        "not valid YAML");

    private string Anchor => $"{{ source: {fixture.Training.AnchorFolder} }}";

    private async Task Expect(string yaml, int line, string expected)
    {
        var path = fixture.Recipe(yaml);
        var error = await Assert.ThrowsAsync<RecipeException>(async () =>
            await Composer.ComposeAsync(Recipe.Load(path), Path.Combine(Path.GetDirectoryName(path)!, "out"), null, null, CancellationToken.None));
        Assert.StartsWith($"{path}:{line}: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Path.GetDirectoryName(path)!, "out")));
    }

}

public sealed class RecipeExamplesTests
{
    [Fact]
    public void EveryRecipeInTheRecipesFolder_FollowsTheSchema()
    {
        var recipes = Directory.GetFiles(Path.Combine(FlexOlmo.Testing.TestPaths.RepositoryRoot, "recipes"), "*.yaml");
        Assert.NotEmpty(recipes);
        foreach (var path in recipes)
        {
            var recipe = Recipe.Load(path);
            Assert.NotEmpty(recipe.Experts);
            Assert.True(recipe.ShardBytes() > 0);
        }
    }
}
