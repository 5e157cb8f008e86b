using FlexOlmo.Packages;

namespace FlexOlmo.Registry.Tests;

/// <summary>Anchors published twice or under clashing names, interrupted local uploads, and what a referring anchor publishes.</summary>
[Collection(RegistryCollection.Name)]
public sealed class PublishHardeningTests(RegistryStores stores)
{
    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task PublishAnchor_Again_ReportsItWasAlreadyThere_AndUnderAnotherName_IsRefused(string kind)
    {
        using var temp = new TempDirectory("anchor-twice");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        var first = TestPackages.Anchor(temp.Sub("a"), "public");
        var renamed = Copy(first.Folder, temp.File("b"), "other-name");

        var published = await registry.PublishAnchorAsync(first.Folder, null, null, CancellationToken.None);
        var again = await registry.PublishAnchorAsync(first.Folder, null, null, CancellationToken.None);
        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PublishAnchorAsync(renamed, null, null, CancellationToken.None));

        Assert.False(published.AlreadyPublished);
        Assert.True(again.AlreadyPublished);
        Assert.Equal(0, again.FilesUploaded);
        Assert.Contains("already published", error.Message, StringComparison.Ordinal);
        Assert.Contains("'public'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task PublishAnchor_WithANameAnotherAnchorHas_IsRefused(string kind)
    {
        using var temp = new TempDirectory("anchor-namesake");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        await registry.PublishAnchorAsync(TestPackages.Anchor(temp.Sub("a"), "public", seed: 1).Folder, null, null, CancellationToken.None);

        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PublishAnchorAsync(TestPackages.Anchor(temp.Sub("b"), "public", seed: 2).Folder, null, null, CancellationToken.None));

        Assert.Contains("already published", error.Message, StringComparison.Ordinal);
        Assert.Contains("another fingerprint", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task PullAnchor_ByANameTwoAnchorsHave_ListsThemInsteadOfPickingOne(string kind)
    {
        using var temp = new TempDirectory("anchor-ambiguous");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store);
        var one = TestPackages.Anchor(temp.Sub("a"), "public", seed: 1);
        var two = TestPackages.Anchor(temp.Sub("b"), "public", seed: 2);
        await registry.PublishAnchorAsync(one.Folder, null, null, CancellationToken.None);
        // A second anchor of the same name, written behind publish's back (an older tool, or another writer).
        await registry.PublishAnchorAsync(Copy(two.Folder, temp.File("b2"), "temporary"), null, null, CancellationToken.None);
        var key = RegistryLayout.AnchorManifest(two.Fingerprint);
        var renamed = System.Text.Encoding.UTF8.GetString((await store.ReadAsync(key, 1 << 20, CancellationToken.None))!).Replace("\"temporary\"", "\"public\"", StringComparison.Ordinal);
        await StoreTampering.OverwriteAsync(stores, store, key, System.Text.Encoding.UTF8.GetBytes(renamed));

        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PullAnchorAsync("anchor:public", temp.File("out"), null, CancellationToken.None));
        var byFingerprint = await registry.PullAnchorAsync($"anchor:{two.Fingerprint}", temp.File("exact"), null, CancellationToken.None);

        Assert.Contains("2 anchors are named 'public'", error.Message, StringComparison.Ordinal);
        Assert.Contains(one.Fingerprint, error.Message, StringComparison.Ordinal);
        Assert.Contains(two.Fingerprint, error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("out")));
        Assert.Equal(two.Fingerprint, byFingerprint.Fingerprint);
    }

    [Fact]
    public async Task LocalPublish_Interrupted_LeavesItsPartialUpload_AndTheNextPublishContinuesFromIt()
    {
        using var temp = new TempDirectory("local-resume");
        var store = (LocalStore)await stores.NewAsync("local");
        var registry = new ExpertRegistry(store);
        var size = 20 << 20;
        var package = TestPackages.Expert(temp.Sub("big"), "big", bytes: size, seed: 11);
        using var cancel = new CancellationTokenSource();
        var interrupted = new Progress(t =>
        {
            if (t.Done >= 8 << 20)
            {
                cancel.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => registry.PublishExpertAsync(package, null, interrupted, cancel.Token));
        var partials = Directory.GetFiles(Path.Combine(store.Location, "blobs", "sha256"), "*.partial", new EnumerationOptions { AttributesToSkip = 0 });
        var result = await registry.PublishExpertAsync(package, null, null, CancellationToken.None);

        var partial = Assert.Single(partials);
        Assert.False(File.Exists(partial)); // consumed by the second publish
        Assert.Equal(1, result.BlocksReused);
        var fileSize = new FileInfo(Path.Combine(package, ExpertTensorNames.WeightsFile)).Length;
        Assert.True(result.BytesSent <= fileSize - (8 << 20), $"sent {result.BytesSent} of {fileSize} bytes again");
        Assert.Empty(Directory.GetFiles(Path.Combine(store.Location, "blobs", "sha256"), ".*", new EnumerationOptions { AttributesToSkip = 0 }));
        var pulled = (await registry.PullExpertAsync("big", temp.File("pulled"), null, null, CancellationToken.None)).Package;
        Assert.Equal(File.ReadAllBytes(Path.Combine(package, ExpertTensorNames.WeightsFile)), File.ReadAllBytes(pulled.WeightsPath));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task ReferringAnchor_PublishesOnlyTheModelsOwnFiles_NeverWhatElseSitsInItsFolder(string kind)
    {
        using var temp = new TempDirectory("anchor-reference");
        var model = temp.Sub("model-elsewhere");
        var anchor = TestPackages.Anchor(temp.Sub("anchor"), "public", referenceModel: model);
        File.WriteAllText(Path.Combine(model, "secrets.txt"), "password=hunter2");
        File.WriteAllText(Path.Combine(model, "notes.json"), "{\"private\": true}");
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), "{}");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));

        await registry.PublishAnchorAsync(anchor.Folder, null, null, CancellationToken.None);
        var pulled = await registry.PullAnchorAsync("anchor:public", temp.File("pulled"), null, CancellationToken.None);

        var files = Directory.GetFiles(pulled.ModelFolder).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["config.json", "model.safetensors", "tokenizer_config.json"], files);
        Assert.DoesNotContain(pulled.Manifest.Value.Files, f => f.Path.Contains("secrets", StringComparison.Ordinal) || f.Path.Contains("notes", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("news\n")]
    [InlineData("news\u0007")]
    [InlineData("news\r")]
    public void Names_WithControlCharacters_AreRefusedByNamingAndBySchema(string name)
    {
        using var temp = new TempDirectory("control-names");
        var folder = TestPackages.Expert(temp.Sub("p"), "news");
        var path = Path.Combine(folder, ExpertManifest.FileName);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["name"] = name;

        Assert.Throws<PackageException>(() => Naming.CheckName(name));
        Assert.False(Naming.IsValidName(name));
        Assert.Contains(SchemaValidator.Problems(SchemaValidator.ExpertManifest, json), p => p.StartsWith("name", StringComparison.Ordinal));
    }

    /// <summary>A copy of an anchor folder under another name (same model, same fingerprint).</summary>
    private static string Copy(string source, string target, string name)
    {
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var destination = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }

        var manifest = Path.Combine(target, AnchorManifest.FileName);
        File.WriteAllText(manifest, File.ReadAllText(manifest).Replace($"\"name\": \"{AnchorPackage.Open(source).Manifest.Value.Name}\"", $"\"name\": \"{name}\"", StringComparison.Ordinal));
        return target;
    }

    private sealed class Progress(Action<TransferProgress> report) : IProgress<TransferProgress>
    {
        public void Report(TransferProgress value) => report(value);
    }
}
