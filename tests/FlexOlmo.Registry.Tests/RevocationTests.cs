using System.Text;
using System.Text.Json.Nodes;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry.Tests;

/// <summary>
/// A revocation cannot be undone without the owner's key: not by re-writing, stripping or deleting the manifest, not by
/// deleting the record, and not by making the registry unreadable. Each test uses its own registry and its own memory
/// of seen revocations, and checks through a fresh registry object where the point is what the registry shows.
/// </summary>
[Collection(RegistryCollection.Name)]
public sealed class RevocationTests(RegistryStores stores)
{
    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revoke_BindsTheRecordToNameVersionAndTheCanonicalContentTheOwnerSigned(string kind)
    {
        using var temp = new TempDirectory("rev-bind");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("seen")));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), owner, null, CancellationToken.None);
        var published = (await registry.ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document;

        await registry.RevokeAsync("news@1.0.0", "withdrawn", owner, CancellationToken.None);

        var bytes = await store.ReadAsync(RegistryLayout.Revocation("news", "1.0.0", owner.Fingerprint), 1 << 16, CancellationToken.None);
        var record = SignedDocument<RevocationRecord>.Parse(bytes!, SchemaValidator.Revocation, "record");
        Assert.Equal(("news", "1.0.0", published.ContentSha256), (record.Value.Name, record.Value.Version, record.Value.ContentSha256));
        Assert.Equal(owner.Fingerprint, ManifestSignature.VerifyIntegrity(record.Json, "record"));
        Assert.NotEqual(published.Sha256, published.ContentSha256); // the file's bytes include the signature; the content digest does not
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revocation_StillApplies_WhenTheManifestsBytesAreRewrittenWithTheSameMeaning(string kind)
    {
        using var temp = new TempDirectory("rev-reformat");
        var store = await stores.NewAsync(kind);
        using var owner = SigningKey.Create(temp.File("owner.key"));
        await Revoked(store, temp, "news", owner);
        var key = RegistryLayout.ExpertManifest("news", "1.0.0");
        var json = JsonNode.Parse((await store.ReadAsync(key, 1 << 20, CancellationToken.None))!)!.AsObject();
        var reordered = new JsonObject(json.Reverse().Select(p => KeyValuePair.Create(p.Key, p.Value?.DeepClone())));
        await StoreTampering.OverwriteAsync(stores, store, key, Encoding.UTF8.GetBytes(reordered.ToJsonString() + "\n\n"));

        var fresh = new ExpertRegistry(store, new RevocationLedger(temp.Sub("fresh")));

        var error = await Assert.ThrowsAsync<RegistryException>(() => fresh.PullExpertAsync("news@1.0.0", temp.File("out"), null, null, CancellationToken.None));
        Assert.Contains("revoked by its owner", error.Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(await fresh.ListAsync(null, CancellationToken.None)).Revoked);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revocation_StillApplies_WhenTheManifestsSignatureIsStripped(string kind)
    {
        using var temp = new TempDirectory("rev-strip");
        var store = await stores.NewAsync(kind);
        using var owner = SigningKey.Create(temp.File("owner.key"));
        await Revoked(store, temp, "news", owner);
        var key = RegistryLayout.ExpertManifest("news", "1.0.0");
        var json = JsonNode.Parse((await store.ReadAsync(key, 1 << 20, CancellationToken.None))!)!.AsObject();
        json.Remove("signature");
        await StoreTampering.OverwriteAsync(stores, store, key, Encoding.UTF8.GetBytes(json.ToJsonString()));

        var fresh = new ExpertRegistry(store, new RevocationLedger(temp.Sub("fresh")));

        var error = await Assert.ThrowsAsync<RegistryException>(() => fresh.PullExpertAsync("news@1.0.0", temp.File("out"), null, null, CancellationToken.None));
        Assert.Contains("news@1.0.0 was withdrawn", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("out")));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revocation_StillApplies_WhenTheManifestIsDeleted(string kind)
    {
        using var temp = new TempDirectory("rev-delete");
        var store = await stores.NewAsync(kind);
        using var owner = SigningKey.Create(temp.File("owner.key"));
        var package = await Revoked(store, temp, "news", owner);
        var signed = (await new ExpertRegistry(store, new RevocationLedger(temp.Sub("read"))).ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document;
        await StoreTampering.DeleteAsync(stores, store, RegistryLayout.ExpertManifest("news", "1.0.0"));

        var fresh = new ExpertRegistry(store, new RevocationLedger(temp.Sub("fresh")));

        var finding = await fresh.CheckRevocationAsync(ExpertIdentity.Of(signed), CancellationToken.None);
        Assert.NotNull(finding);
        Assert.Equal(RevocationBasis.Owner, finding.Basis);
        Assert.NotNull(await fresh.CheckRevocationAsync(ExpertIdentity.Of(ExpertPackage.Open(package).Manifest) with { Owner = owner.Fingerprint }, CancellationToken.None));
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Revocation_OnceSeen_IsNeverForgotten_WhenItsRecordDisappears(string kind)
    {
        using var temp = new TempDirectory("rev-remember");
        var store = await stores.NewAsync(kind);
        var seen = new RevocationLedger(temp.Sub("seen"));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        await new ExpertRegistry(store).PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), owner, null, CancellationToken.None);
        await new ExpertRegistry(store, new RevocationLedger(temp.Sub("owner-side"))).RevokeAsync("news@1.0.0", "withdrawn", owner, CancellationToken.None);
        Assert.True(Assert.Single(await new ExpertRegistry(store, seen).ListAsync(null, CancellationToken.None)).Revoked); // seen once
        await StoreTampering.DeleteAsync(stores, store, RegistryLayout.Revocation("news", "1.0.0", owner.Fingerprint));

        var later = new ExpertRegistry(store, seen);

        var error = await Assert.ThrowsAsync<RegistryException>(() => later.PullExpertAsync("news@1.0.0", temp.File("out"), null, null, CancellationToken.None));
        Assert.Contains("never forgotten", error.Message, StringComparison.Ordinal);
        Assert.True(Assert.Single(await later.ListAsync(null, CancellationToken.None)).Revoked);
        Assert.Null(await new ExpertRegistry(store, new RevocationLedger(temp.Sub("never-saw-it"))).CheckRevocationAsync(ExpertIdentity.Of((await later.ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document), CancellationToken.None));
    }

    [Fact]
    public async Task UnreadableLocalRegistry_IsAnError_NeverAnEmptyRevocationList()
    {
        using var temp = new TempDirectory("rev-gone");
        var store = await stores.NewAsync("local");
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("seen")));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), null, null, CancellationToken.None);
        var identity = ExpertIdentity.Of((await registry.ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document);
        Directory.Delete(store.Location, recursive: true);

        var check = await Assert.ThrowsAsync<RegistryException>(() => registry.CheckRevocationAsync(identity, CancellationToken.None));
        var reopen = await Assert.ThrowsAsync<RegistryException>(() => RegistryConnection.OpenAsync(store.Location, null, CancellationToken.None));

        Assert.Contains("No registry at", check.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", reopen.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreachableAzureRegistry_IsAnError_NeverAnEmptyRevocationList()
    {
        using var temp = new TempDirectory("rev-azure-down");
        var store = await stores.SmallBlocksAsync("revocations-down");
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("seen")));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), null, null, CancellationToken.None);
        var identity = ExpertIdentity.Of((await registry.ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document);
        stores.Azurite.Stop();
        try
        {
            var error = await Assert.ThrowsAsync<RegistryException>(() => registry.CheckRevocationAsync(identity, CancellationToken.None));
            Assert.Contains("could not", error.Message, StringComparison.Ordinal);
            Assert.Contains("reachable", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            stores.Azurite.Start();
        }
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task UnsignedExpert_RevokedByAnyKey_IsWithdrawn_AndTheMessageSaysNobodyCanTellWho(string kind)
    {
        using var temp = new TempDirectory("rev-unsigned");
        var registry = new ExpertRegistry(await stores.NewAsync(kind), new RevocationLedger(temp.Sub("seen")));
        using var stranger = SigningKey.Create(temp.File("stranger.key"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), null, null, CancellationToken.None);

        await registry.RevokeAsync("news@1.0.0", "someone asked", stranger, CancellationToken.None);

        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PullExpertAsync("news", temp.File("out"), null, null, CancellationToken.None));
        Assert.DoesNotContain("by its owner", error.Message, StringComparison.Ordinal);
        Assert.Contains("unsigned, so nobody can tell whether its owner did this", error.Message, StringComparison.Ordinal);
        Assert.Contains(stranger.Fingerprint, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task SignedExpert_AStrangersRecord_IsNotARevocation_AndCannotTakeTheOwnersPlace(string kind)
    {
        using var temp = new TempDirectory("rev-stranger");
        var store = await stores.NewAsync(kind);
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("seen")));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var stranger = SigningKey.Create(temp.File("stranger.key"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), owner, null, CancellationToken.None);
        var content = (await registry.ReadManifestAsync("news", "1.0.0", CancellationToken.None)).Document.ContentSha256;
        foreach (var (signer, slot) in new[] { (stranger, stranger.Fingerprint), ((SigningKey?)null, null), (stranger, owner.Fingerprint) })
        {
            var forged = SignedDocument<RevocationRecord>.Create(new RevocationRecord("news", "1.0.0", content, "not mine to revoke", DateTimeOffset.UtcNow), SchemaValidator.Revocation, signer);
            await store.CreateIfAbsentAsync(RegistryLayout.Revocation("news", "1.0.0", slot), Encoding.UTF8.GetBytes(forged.Serialize()), CancellationToken.None);
        }

        Assert.False(Assert.Single(await registry.ListAsync(null, CancellationToken.None)).Revoked);
        await StoreTampering.DeleteAsync(stores, store, RegistryLayout.Revocation("news", "1.0.0", owner.Fingerprint)); // the one squatting the owner's slot
        await registry.RevokeAsync("news@1.0.0", "the owner withdrew consent", owner, CancellationToken.None);

        var listed = Assert.Single(await registry.ListAsync(null, CancellationToken.None));
        Assert.Equal(RevocationBasis.Owner, listed.Revocation!.Basis);
        Assert.Equal("the owner withdrew consent", listed.Revocation.Reason);
    }

    [Theory]
    [InlineData("{ this is not json")]
    [InlineData("""{"format": "flexolmo-revocation/1", "name": "news", "version": "1.0.0", "content_sha256": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "reason": "x", "revoked_at": "2026-01-01T00:00:00Z", "signature": {"algorithm": "ecdsa-p256-sha256", "key_fingerprint": "sha256:1111111111111111111111111111111111111111111111111111111111111111", "public_key": "AAAA", "value": "AAAA"}}""")]
    public async Task DamagedOrForgedRecordInTheOwnersPlace_CountsAsRevoked_UntilItIsResolved(string record)
    {
        using var temp = new TempDirectory("rev-forged");
        var store = await stores.NewAsync("local");
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("seen")));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("n"), "news"), owner, null, CancellationToken.None);
        await store.CreateIfAbsentAsync(RegistryLayout.Revocation("news", "1.0.0", owner.Fingerprint), Encoding.UTF8.GetBytes(record), CancellationToken.None);

        var listed = Assert.Single(await registry.ListAsync(null, CancellationToken.None));
        var error = await Assert.ThrowsAsync<RegistryException>(() => registry.PullExpertAsync("news", temp.File("out"), null, null, CancellationToken.None));

        Assert.Equal(RevocationBasis.Unverifiable, listed.Revocation!.Basis);
        Assert.Contains("could not be verified", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(RegistryStores.Kinds), MemberType = typeof(RegistryStores))]
    public async Task Pull_WithoutTrustedKeys_SaysLoudlyThatTheContentIsUnverified(string kind)
    {
        using var temp = new TempDirectory("rev-unverified");
        var registry = new ExpertRegistry(await stores.NewAsync(kind), new RevocationLedger(temp.Sub("seen")));
        using var owner = SigningKey.Create(temp.File("owner.key"));
        using var trusted = SigningKey.Load(temp.File("owner.key.pub"));
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("u"), "unsigned"), null, null, CancellationToken.None);
        await registry.PublishExpertAsync(TestPackages.Expert(temp.Sub("s"), "signed"), owner, null, CancellationToken.None);

        var unsigned = await registry.PullExpertAsync("unsigned", temp.File("o1"), null, null, CancellationToken.None);
        var signedUntrusted = await registry.PullExpertAsync("signed", temp.File("o2"), [], null, CancellationToken.None);
        var signedTrusted = await registry.PullExpertAsync("signed", temp.File("o3"), [trusted], null, CancellationToken.None);

        Assert.Contains("UNSIGNED and UNVERIFIED", unsigned.Verification.Warning, StringComparison.Ordinal);
        Assert.Contains("UNVERIFIED", signedUntrusted.Verification.Warning, StringComparison.Ordinal);
        Assert.False(signedUntrusted.Verification.Trusted);
        Assert.Null(signedTrusted.Verification.Warning);
        Assert.True(signedTrusted.Verification.Trusted);
    }

    /// <summary>Publishes NAME signed by <paramref name="owner"/> and revokes it with the owner's key; returns the package folder.</summary>
    private static async Task<string> Revoked(IRegistryStore store, TempDirectory temp, string name, SigningKey owner)
    {
        var registry = new ExpertRegistry(store, new RevocationLedger(temp.Sub("owner-side")));
        var package = TestPackages.Expert(temp.Sub(name), name);
        await registry.PublishExpertAsync(package, owner, null, CancellationToken.None);
        await registry.RevokeAsync($"{name}@1.0.0", "consent withdrawn", owner, CancellationToken.None);
        return package;
    }
}
