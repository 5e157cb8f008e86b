using Azure.Storage.Blobs;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry.Tests;

[Collection(RegistryCollection.Name)]
public sealed class ExpertRegistryTests(RegistryStores stores)
{
    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task PublishListPull_RoundTripsEveryByteAndTheSignature(string kind)
    {
        using var temp = new TempDirectory("roundtrip");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        using var key = SigningKey.Create(temp.File("owner.key"));
        var package = TestPackages.Expert(temp.Sub("news"), "news", bytes: 100_000);

        var published = await registry.PublishExpertAsync(package, key, null, CancellationToken.None);
        var listed = await registry.ListAsync(null, CancellationToken.None);
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        var pulled = (await registry.PullExpertAsync("news", temp.File("pulled"), [trusted], null, CancellationToken.None)).Package;

        Assert.Equal("news@1.0.0", published.Reference);
        Assert.Equal(1, published.FilesUploaded);
        var entry = Assert.Single(listed);
        Assert.Equal(("news", "1.0.0", "news owner", "Apache-2.0", key.Fingerprint, false), (entry.Name, entry.Version, entry.Owner, entry.License, entry.SignedBy, entry.Revoked));
        Assert.Equal(File.ReadAllBytes(Path.Combine(package, ExpertTensorNames.WeightsFile)), File.ReadAllBytes(pulled.WeightsPath));
        Assert.Equal(key.Fingerprint, pulled.Manifest.SignedBy);
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*"));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Publish_WithAnAudit_CarriesItUnderTheSignature_ToWhoeverPulls(string kind)
    {
        using var temp = new TempDirectory("audited");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        using var key = SigningKey.Create(temp.File("owner.key"));
        var package = TestPackages.Expert(temp.Sub("news"), "news");
        var audit = new ExtractionAuditSummary(0.02, 100, 2, 0.0, 32, 256, 10, 0.9, FileDigest.Of([1, 2, 3]));

        await registry.PublishExpertAsync(package, key, audit, null, CancellationToken.None);
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        var pulled = (await registry.PullExpertAsync("news", temp.File("pulled"), [trusted], null, CancellationToken.None)).Package;

        Assert.Equal(audit, pulled.Manifest.Value.ExtractionAudit);
        Assert.Equal(key.Fingerprint, pulled.Manifest.SignedBy);
        Assert.Null(ExpertPackage.Open(package).Manifest.Value.ExtractionAudit); // the owner's own package is left as it was
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Pull_OfATamperedBlob_FailsNamingTheFile_AndKeepsNothing(string kind)
    {
        using var temp = new TempDirectory("tamper");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store);
        var package = TestPackages.Expert(temp.Sub("clinic"), "clinic");
        await registry.PublishExpertAsync(package, null, null, CancellationToken.None);
        var digest = ExpertPackage.Open(package).Manifest.Value.Files[0];
        var forged = new byte[digest.Size];
        await OverwriteAsync(store, kind, RegistryLayout.Blob(digest.Sha256), forged);

        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PullExpertAsync("clinic@1.0.0", temp.File("out"), null, null, CancellationToken.None));

        Assert.Contains(ExpertTensorNames.WeightsFile, error.Message, StringComparison.Ordinal);
        Assert.Contains("do not match", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("out")));
        Assert.Empty(Directory.GetDirectories(temp.Path, ".out*"));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Publish_OfAnExistingVersion_IsRefused_AndLeavesItUntouched(string kind)
    {
        using var temp = new TempDirectory("immutable");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store);
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("a"), "law", seed: 1), null, null, CancellationToken.None);
        var before = await store.ReadAsync(RegistryLayout.ExpertManifest("law", "1.0.0"), 1 << 20, CancellationToken.None);

        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("b"), "law", seed: 2), null, null, CancellationToken.None));

        Assert.Contains("already published", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, await store.ReadAsync(RegistryLayout.ExpertManifest("law", "1.0.0"), 1 << 20, CancellationToken.None));
        Assert.False(await store.CreateIfAbsentAsync(RegistryLayout.ExpertManifest("law", "1.0.0"), [1, 2, 3], CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task TwoPublishersAtOnce_OfDifferentExperts_BothAppear(string kind)
    {
        using var temp = new TempDirectory("concurrent");
        var store = await stores.NewAsync(kind);
        var first = TestPackages.Expert(temp.Sub("one"), "alpha", bytes: 300_000, seed: 3);
        var second = TestPackages.Expert(temp.Sub("two"), "beta", bytes: 300_000, seed: 4);

        await Task.WhenAll(
            Task.Run(() => new ExpertRegistry(store).PublishExpertAsync(first, null, null, CancellationToken.None)),
            Task.Run(() => new ExpertRegistry(store).PublishExpertAsync(second, null, null, CancellationToken.None)));

        var listed = await new ExpertRegistry(store).ListAsync(null, CancellationToken.None);
        Assert.Equal(["alpha", "beta"], listed.Select(e => e.Name));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Publish_SkipsBlobsAlreadyPresent_AndPullPicksTheLatestVersion(string kind)
    {
        using var temp = new TempDirectory("dedupe");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("v1"), "code", "1.9.0", seed: 5), null, null, CancellationToken.None);
        var again = await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("v2"), "code", "1.10.0", seed: 5), null, null, CancellationToken.None);

        Assert.Equal(0, again.FilesUploaded);
        Assert.Equal(1, again.FilesSkipped);
        var pulled = (await registry.PullExpertAsync("code", temp.File("latest"), null, null, CancellationToken.None)).Package;
        Assert.Equal("1.10.0", pulled.Manifest.Value.Version);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Pull_WithATrustedKey_RefusesUnsignedAndForeignSignedAndAlteredManifests(string kind)
    {
        using var temp = new TempDirectory("trust");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store);
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var stranger = SigningKey.Create(temp.File("stranger.key"));
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("u"), "unsigned"), null, null, CancellationToken.None);
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("f"), "foreign"), stranger, null, CancellationToken.None);
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("a"), "altered"), owner, null, CancellationToken.None);
        var key = RegistryLayout.ExpertManifest("altered", "1.0.0");
        var text = System.Text.Encoding.UTF8.GetString((await store.ReadAsync(key, 1 << 20, CancellationToken.None))!).Replace("altered owner", "someone else", StringComparison.Ordinal);
        await OverwriteAsync(store, kind, key, System.Text.Encoding.UTF8.GetBytes(text));

        var unsigned = await Assert.ThrowsAsync<PackageException>(() => registry.PullExpertAsync("unsigned", temp.File("o1"), [trusted], null, CancellationToken.None));
        var foreign = await Assert.ThrowsAsync<PackageException>(() => registry.PullExpertAsync("foreign", temp.File("o2"), [trusted], null, CancellationToken.None));
        var altered = await Assert.ThrowsAsync<PackageException>(() => registry.PullExpertAsync("altered", temp.File("o3"), [trusted], null, CancellationToken.None));

        Assert.Contains("not signed", unsigned.Message, StringComparison.Ordinal);
        Assert.Contains("not among the trusted keys", foreign.Message, StringComparison.Ordinal);
        Assert.Contains("does not match its content", altered.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("o1")) || Directory.Exists(temp.File("o2")) || Directory.Exists(temp.File("o3")));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revoke_MarksTheVersionRevoked_AndPullRefusesIt_OnlyTheOwnersKeyMayRevoke(string kind)
    {
        using var temp = new TempDirectory("revoke");
        var registry = new ExpertRegistry(await stores.NewAsync(kind));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var stranger = SigningKey.Create(temp.File("stranger.key"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), owner, null, CancellationToken.None);

        var refused = await Assert.ThrowsAsync<RegistryException>(() => registry.RevokeAsync("news@1.0.0", "not mine", stranger, CancellationToken.None));
        await registry.RevokeAsync("news@1.0.0", "consent withdrawn by the publisher", owner, CancellationToken.None);

        Assert.Contains("only that key can revoke", refused.Message, StringComparison.Ordinal);
        var entry = Assert.Single(await registry.ListAsync(null, CancellationToken.None));
        Assert.True(entry.Revoked);
        Assert.Equal("consent withdrawn by the publisher", entry.Revocation!.Reason);
        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PullExpertAsync("news@1.0.0", temp.File("out"), null, null, CancellationToken.None));
        Assert.Contains("revoked by its owner", error.Message, StringComparison.Ordinal);
        Assert.Contains("consent withdrawn", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<RegistryException>(() => registry.RevokeAsync("news@1.0.0", "again", owner, CancellationToken.None));
    }

    [Fact]
    public async Task AzuriteStoppedMidUpload_ThenRestarted_TheRetryFinishesAndReusesStagedBlocks()
    {
        using var temp = new TempDirectory("resume-upload");
        var store = await stores.SmallBlocksAsync("resumable");
        var registry = new ExpertRegistry(store);
        var package = TestPackages.Expert(temp.Sub("big"), "big", bytes: 8 * 1024 * 1024, seed: 9); // 32 blocks of 256 KiB
        var staged = 0;
        void StopAfterTen(int _)
        {
            if (Interlocked.Increment(ref staged) == 10)
            {
                stores.Azurite.Stop();
            }
        }

        store.BlockStaged += StopAfterTen;
        var interrupted = await Assert.ThrowsAnyAsync<Exception>(() => registry.PublishExpertAsync(package, null, null, CancellationToken.None));
        store.BlockStaged -= StopAfterTen;
        stores.Azurite.Start();

        var result = await registry.PublishExpertAsync(package, null, null, CancellationToken.None);

        Assert.InRange(result.BlocksReused, 10, 31);
        Assert.IsType<RegistryException>(interrupted); // one line for the user, never an unhandled SDK or network exception
        Assert.Contains("Run the same publish again", interrupted.Message, StringComparison.Ordinal);
        Assert.True(result.BytesSent < 8 * 1024 * 1024, $"sent {result.BytesSent} bytes again");
        var pulled = (await registry.PullExpertAsync("big", temp.File("pulled"), null, null, CancellationToken.None)).Package;
        Assert.Equal(File.ReadAllBytes(Path.Combine(package, ExpertTensorNames.WeightsFile)), File.ReadAllBytes(pulled.WeightsPath));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("Capital")]
    [InlineData("a/b")]
    [InlineData("/abs")]
    [InlineData("dots..dots")]
    [InlineData("")]
    public void Names_WithDotsDotsSlashesOrOddCharacters_AreRefused(string name)
    {
        Assert.ThrowsAny<Formats.FlexOlmoException>(() => Naming.ParseReference(name + "@1.0.0"));
        Assert.ThrowsAny<Formats.FlexOlmoException>(() => RegistryLayout.ExpertManifest(name, "1.0.0"));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("blobs/../../x")]
    [InlineData("blobs/sha256/a b")]
    [InlineData("blobs\\x")]
    public async Task LocalStore_RefusesPathsThatLeaveTheRegistry(string key)
    {
        var store = await stores.NewAsync("local");
        await Assert.ThrowsAsync<RegistryException>(() => store.ReadAsync(key, 100, CancellationToken.None));
        await Assert.ThrowsAsync<RegistryException>(() => store.CreateIfAbsentAsync(key, [1], CancellationToken.None));
    }

    [Fact]
    public void Manifest_ListingAFileOutsideThePackage_FailsSchemaValidation()
    {
        using var temp = new TempDirectory("escape");
        var folder = TestPackages.Expert(temp.Sub("p"), "p");
        var path = Path.Combine(folder, ExpertManifest.FileName);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"expert.safetensors\"", "\"../../etc/passwd\"", StringComparison.Ordinal));
        var error = Assert.Throws<PackageException>(() => ExpertPackage.Open(folder));
        Assert.Contains("files.0.path", error.Message, StringComparison.Ordinal);
    }

    /// <summary>Replaces an object behind the registry's back (as an attacker with write access to the storage could).</summary>
    private async Task OverwriteAsync(IRegistryStore store, string kind, string key, byte[] content)
    {
        if (kind == "local")
        {
            await File.WriteAllBytesAsync(Path.Combine(store.Location, key), content);
            return;
        }

        var uri = new Uri(store.Location);
        var segments = uri.AbsolutePath.Trim('/').Split('/');
        var container = new BlobServiceClient(stores.Azurite.ConnectionString).GetBlobContainerClient(segments[1]);
        var prefix = string.Join('/', segments.Skip(2));
        await container.GetBlobClient($"{prefix}/{key}").UploadAsync(BinaryData.FromBytes(content), overwrite: true);
    }
}
