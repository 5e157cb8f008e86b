using FlexOlmo.Registry;

namespace FlexOlmo.Composition.Tests;

/// <summary>
/// Compose never fails open: an empty trust list is an error, an unverified expert is said to be unverified, a
/// revocation is found without the registry's manifest and remembered once seen. Hostile recipes give one-line
/// errors, and a compose that is killed leaves nothing behind after the next run.
/// </summary>
[Collection(CompositionCollection.Name)]
public sealed class CompositionHardeningTests(CompositionFixture fixture)
{
    [Fact]
    public void Recipe_WithAnEmptyTrustedKeysList_IsAnError_NotVerificationTurnedOff()
    {
        var path = fixture.Recipe($"name: x\nanchor: {Anchor}\nexperts:\n  - source: {fixture.Counting.Folder}\ntrusted_keys: []\n");

        var error = Assert.Throws<RecipeException>(() => Recipe.Load(path));

        Assert.StartsWith($"{path}:5: trusted_keys: is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compose_WithoutTrustedKeys_SaysEveryExpertIsUnverified_AndRecordsIt()
    {
        var path = fixture.Recipe($"name: x\nregistry: {fixture.RegistryFolder}\nanchor: {Anchor}\nexperts:\n  - source: counting@1.0.0\n  - source: {fixture.Chemistry.Folder}\n");

        var result = await Composer.ComposeAsync(Recipe.Load(path), Out(path), null, null, CancellationToken.None);

        Assert.Contains(result.Warnings, w => w.Contains("counting@1.0.0 is UNVERIFIED", StringComparison.Ordinal));
        Assert.Contains(result.Warnings, w => w.Contains("chemistry@1.0.0 is UNSIGNED and UNVERIFIED", StringComparison.Ordinal));
        Assert.All(result.Sidecar.Experts.Skip(1), e => Assert.False(e.Verified));
        Assert.All(result.Sidecar.Experts.Skip(1), e => Assert.StartsWith("sha256:", e.ContentSha256, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Compose_FromAFolder_FindsTheRevocation_EvenWhenTheRegistrysManifestWasDeleted()
    {
        var registry = new ExpertRegistry(new LocalStore(fixture.RegistryFolder), new RevocationLedger(fixture.Training.Root.Sub("owner-" + Guid.NewGuid().ToString("N"))));
        var copy = fixture.CopyPackage(fixture.Chemistry.Folder, m => m["version"] = "7.7.7");
        await registry.PublishExpertAsync(copy, null, null, CancellationToken.None);
        await registry.RevokeAsync("chemistry@7.7.7", "the lab withdrew consent", null, CancellationToken.None);
        File.Delete(Path.Combine(fixture.RegistryFolder, RegistryLayout.ExpertManifest("chemistry", "7.7.7")));
        var path = fixture.Recipe($"name: x\nregistry: {fixture.RegistryFolder}\nanchor: {Anchor}\nexperts:\n  - source: {copy}\n");

        var error = await Assert.ThrowsAsync<RecipeException>(() => Composer.ComposeAsync(Recipe.Load(path), Out(path), null, null, CancellationToken.None));

        Assert.Contains("chemistry@7.7.7 was withdrawn", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Out(path)));
    }

    [Fact]
    public async Task Compose_RemembersARevocation_AfterItsRecordDisappearsFromTheRegistry()
    {
        var registry = new ExpertRegistry(new LocalStore(fixture.RegistryFolder));
        await registry.PublishExpertAsync(fixture.CopyPackage(fixture.Chemistry.Folder, m => m["version"] = "6.6.6"), null, null, CancellationToken.None);
        await registry.RevokeAsync("chemistry@6.6.6", "withdrawn", null, CancellationToken.None);
        var path = fixture.Recipe($"name: x\nregistry: {fixture.RegistryFolder}\nanchor: {Anchor}\nexperts:\n  - source: chemistry@6.6.6\n");
        await Assert.ThrowsAsync<RecipeException>(() => Composer.ComposeAsync(Recipe.Load(path), Out(path), null, null, CancellationToken.None));
        Directory.Delete(Path.Combine(fixture.RegistryFolder, RegistryLayout.RevocationsOf("chemistry", "6.6.6")), recursive: true);

        var error = await Assert.ThrowsAsync<RecipeException>(() => Composer.ComposeAsync(Recipe.Load(path), Out(path), null, null, CancellationToken.None));

        Assert.Contains("never forgotten", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("name: x\nanchor: {source: a\nexperts: [ {source: b}\n")]
    [InlineData("name: x\nanchor: {source: a, source: b}\nexperts: [{source: b}]\n")]
    [InlineData("name: x\nexperts: [{source: b}, {source: c]\n")]
    [InlineData("{name: x, anchor: {source: a}, experts: [{source: b}], name: y}\n")]
    [InlineData("name: &a x\nanchor: {source: *a}\nexperts: [{source: b}]\n")]
    [InlineData("name: x\n\tanchor: y\n")]
    public void BrokenFlowStyleYaml_IsAOneLineRecipeError(string yaml)
    {
        var path = fixture.Recipe(yaml);

        var error = Assert.Throws<RecipeException>(() => Recipe.Load(path));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Theory]
    [InlineData("experts_per_token: 99999999999999999999999", "experts_per_token")]
    [InlineData("experts_per_token: 2147483648", "experts_per_token")]
    [InlineData("output: {shard_size: 0}", "output.shard_size")]
    [InlineData("output: {shard_size: \"0GB\"}", "output.shard_size")]
    [InlineData("output: {shard_size: \"1e30TB\"}", "output.shard_size")]
    [InlineData("output: {shard_size: 99999999999999999999999}", "output.shard_size")]
    public void NumbersTooLargeOrZero_AreRecipeErrorsNamingTheField(string line, string field)
    {
        var path = fixture.Recipe($"name: x\nanchor: {Anchor}\nexperts:\n  - source: {fixture.Counting.Folder}\n{line}\n");

        var error = Assert.Throws<RecipeException>(() => Recipe.Load(path));

        Assert.StartsWith($"{path}:5: {field}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AComposeThatWasKilled_LeavesNoHiddenFolderBehind_AfterTheNextRun()
    {
        var path = fixture.Recipe($"name: x\nanchor: {Anchor}\nexperts:\n  - source: {fixture.Counting.Folder}\n");
        var target = Out(path);
        var parent = Path.GetDirectoryName(target)!;
        const int Gone = 2_000_000_000; // no process has this id
        var abandoned = new[] { $".out.compose-work-{Gone}-{Guid.NewGuid():N}.tmp", $".out.build-{Gone}-{Guid.NewGuid():N}.tmp" }.Select(n => Path.Combine(parent, n)).ToList();
        abandoned.ForEach(f => Directory.CreateDirectory(Path.Combine(f, "expert-0")));
        using (var cancelled = new CancellationTokenSource())
        {
            await cancelled.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Composer.ComposeAsync(Recipe.Load(path), target, null, null, cancelled.Token));
        }

        await Composer.ComposeAsync(Recipe.Load(path), target, null, null, CancellationToken.None);

        Assert.Empty(Directory.GetFileSystemEntries(parent, ".*"));
        Assert.True(Directory.Exists(target));
    }

    [Fact]
    public async Task ARecipeErrorAfterTheFirstExpert_LeavesNoExpertCheckpointMapped()
    {
        var copy = fixture.CopyPackage(fixture.Counting.Folder, m => m["version"] = "4.4.4");
        var path = fixture.Recipe($"name: x\nanchor: {Anchor}\nexperts:\n  - source: {copy}\n  - source: {fixture.CopyPackage(fixture.Chemistry.Folder, m => m["anchor"]!["fingerprint"] = "sha256:" + new string('b', 64))}\n");

        await Assert.ThrowsAsync<RecipeException>(() => Composer.ComposeAsync(Recipe.Load(path), Out(path), null, null, CancellationToken.None));

        // Linux lists every memory map of the process; the first expert's weights were mapped and must be released.
        var maps = await File.ReadAllTextAsync("/proc/self/maps");
        Assert.DoesNotContain(Path.Combine(copy, "expert.safetensors"), maps, StringComparison.Ordinal);
    }

    private string Anchor => $"{{ source: {fixture.Training.AnchorFolder} }}";

    private static string Out(string recipe) => Path.Combine(Path.GetDirectoryName(recipe)!, "out");
}
