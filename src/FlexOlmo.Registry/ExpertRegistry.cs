using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>
/// The registry's operations over one store: publish (files first, the manifest last and create-only), list, pull
/// (into a temporary folder, every file verified, then renamed), revoke, and the one revocation check that pull,
/// compose, list and the server share. Used the same way for both store kinds.
/// </summary>
public sealed class ExpertRegistry(IRegistryStore store, RevocationLedger? ledger = null)
{
    private const long MaxManifestBytes = SignedDocument<ExpertManifest>.MaxBytes;
    private const long MaxRevocationBytes = 64 * 1024;
    private const int MaxRevocationRecords = 256;

    public IRegistryStore Store => store;

    /// <summary>The revocations this machine remembers (<see cref="RevocationLedger.Default"/> unless given).</summary>
    public RevocationLedger Ledger { get; } = ledger ?? RevocationLedger.Default;

    public Task<PublishResult> PublishExpertAsync(string folder, SigningKey? key, IProgress<TransferProgress>? progress, CancellationToken cancellationToken) =>
        PublishExpertAsync(folder, key, null, progress, cancellationToken);

    /// <summary>
    /// Publishes an expert package; <paramref name="audit"/>, when given, goes into the published manifest (and under its
    /// signature) as <c>extraction_audit</c>.
    /// </summary>
    public async Task<PublishResult> PublishExpertAsync(string folder, SigningKey? key, ExtractionAuditSummary? audit, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        // Files are checked against the manifest while they upload (see UploadOneAsync), not in a pass of their own.
        var package = ExpertPackage.Open(folder, verifyFiles: false);
        var manifest = package.Manifest.Value;
        var manifestKey = RegistryLayout.ExpertManifest(manifest.Name, manifest.Version);
        if (await store.ExistsAsync(manifestKey, cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{manifest.Reference} is already published in {store.Location}; published versions never change. Publish with a new version (train-expert --version).");
        }

        var json = (JsonObject)package.Manifest.Json.DeepClone();
        if (audit is not null)
        {
            json["extraction_audit"] = JsonSerializer.SerializeToNode(audit, SignedDocument<ExpertManifest>.Options);
            SchemaValidator.Validate(SchemaValidator.ExpertManifest, json, $"{folder}: the manifest with its extraction audit");
        }

        if (key is not null)
        {
            ManifestSignature.Sign(json, key);
        }

        var totals = new UploadTotals();
        foreach (var file in manifest.Files)
        {
            totals += await UploadOneAsync(file, Path.Combine(folder, file.Path), progress, cancellationToken).ConfigureAwait(false);
        }

        var content = Encoding.UTF8.GetBytes(json.ToJsonString(SignedDocument<ExpertManifest>.Options) + "\n");
        if (!await store.CreateIfAbsentAsync(manifestKey, content, cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{manifest.Reference} was published to {store.Location} by someone else while this upload ran; it was left untouched. Publish with a new version.");
        }

        return new PublishResult(manifest.Reference, totals.Uploaded, totals.Skipped, totals.Bytes, totals.Reused, key?.Fingerprint);
    }

    /// <summary>
    /// Publishes an anchor under its fingerprint. The same anchor published again under the same name is reported as
    /// already there; under another name, or a name that another anchor already has, it is refused.
    /// </summary>
    public async Task<PublishResult> PublishAnchorAsync(string folder, SigningKey? key, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var anchor = AnchorPackage.Open(folder);
        var value = anchor.Manifest.Value;
        var reference = $"anchor:{value.Name} ({value.Fingerprint})";
        var manifestKey = RegistryLayout.AnchorManifest(value.Fingerprint);
        var published = await ReadAnchorsAsync(cancellationToken).ConfigureAwait(false);
        if (published.FirstOrDefault(a => a.Document.Value.Fingerprint == value.Fingerprint) is { } same)
        {
            return same.Document.Value.Name == value.Name
                ? new PublishResult(reference, 0, value.Files.Count, 0, 0, same.Document.SignedBy, AlreadyPublished: true)
                : throw new RegistryException($"This anchor ({value.Fingerprint}) is already published in {store.Location} as '{same.Document.Value.Name}'; nothing was changed. Use anchor:{same.Document.Value.Name}, or anchor:{value.Fingerprint}.");
        }

        if (published.FirstOrDefault(a => a.Document.Value.Name == value.Name) is { } namesake)
        {
            throw new RegistryException($"An anchor named '{value.Name}' is already published in {store.Location} with another fingerprint ({namesake.Document.Value.Fingerprint}); nothing was changed. Prepare this one with another --name.");
        }

        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        var files = new List<FileDigest>();
        foreach (var file in value.Files)
        {
            sources[file.Path] = Path.Combine(folder, file.Path);
            files.Add(file);
        }

        if (Path.IsPathRooted(value.Model.Path))
        {
            // The anchor refers to a model elsewhere: publish that model's files with it, as "model/...", and only
            // those (never logs, data or anything else that sits in the folder).
            foreach (var name in ModelFolderFiles.List(value.Model.Path))
            {
                var digest = FileDigest.Compute(value.Model.Path, name) with { Path = $"{AnchorPackage.ModelFolderName}/{name}" };
                sources[digest.Path] = Path.Combine(value.Model.Path, name);
                files.Add(digest);
            }

            value = value with { Model = value.Model with { Path = AnchorPackage.ModelFolderName }, Files = files };
        }

        var document = SignedDocument<AnchorManifest>.Create(value, SchemaValidator.AnchorManifest, key);
        var totals = new UploadTotals();
        foreach (var file in files)
        {
            totals += await UploadOneAsync(file, sources[file.Path], progress, cancellationToken).ConfigureAwait(false);
        }

        if (!await store.CreateIfAbsentAsync(manifestKey, Encoding.UTF8.GetBytes(document.Serialize()), cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{reference} was published to {store.Location} by someone else while this upload ran; it was left untouched.");
        }

        return new PublishResult(reference, totals.Uploaded, totals.Skipped, totals.Bytes, totals.Reused, key?.Fingerprint);
    }

    public async Task<IReadOnlyList<ListedExpert>> ListAsync(string? anchorFingerprint, CancellationToken cancellationToken)
    {
        var keys = new List<ExpertKey>();
        await foreach (var key in store.ListAsync(RegistryLayout.Experts, cancellationToken).ConfigureAwait(false))
        {
            if (RegistryLayout.ParseExpertManifest(key) is { } parsed)
            {
                keys.Add(parsed);
            }
        }

        var listed = new List<ListedExpert>();
        foreach (var key in keys)
        {
            var published = await ReadManifestAsync(key.Name, key.Version, cancellationToken).ConfigureAwait(false);
            var document = published.Document;
            var m = document.Value;
            if (anchorFingerprint is not null && m.Anchor.Fingerprint != anchorFingerprint)
            {
                continue;
            }

            var (status, signer) = SignatureOf(document);
            var revocation = await CheckRevocationAsync(ExpertIdentity.Of(document), cancellationToken).ConfigureAwait(false);
            listed.Add(new ListedExpert(m.Name, m.Version, m.Owner, m.License, m.Anchor.Fingerprint, m.Anchor.Name, m.Files.Sum(f => f.Size), status, signer, revocation, published.Sha256, m.Description));
        }

        return listed.OrderBy(e => e.Name, StringComparer.Ordinal).ThenBy(e => e.Version, VersionOrder.Instance).ToList();
    }

    /// <summary>The latest version of an expert, or the given one.</summary>
    public async Task<string> ResolveVersionAsync(string name, string? version, CancellationToken cancellationToken)
    {
        if (version is not null)
        {
            return version;
        }

        var versions = new List<string>();
        await foreach (var key in store.ListAsync(RegistryLayout.ExpertVersions(name), cancellationToken).ConfigureAwait(false))
        {
            if (RegistryLayout.ParseExpertManifest(key) is { } parsed && parsed.Name == name)
            {
                versions.Add(parsed.Version);
            }
        }

        return versions.Count > 0
            ? versions.Max(VersionOrder.Instance)!
            : throw new RegistryException($"No expert '{name}' in {store.Location}. 'flexolmo list --registry {store.Location}' shows what is there.");
    }

    /// <summary>A published manifest (validated) and the SHA-256 of its bytes as stored.</summary>
    public async Task<PublishedManifest> ReadManifestAsync(string name, string version, CancellationToken cancellationToken)
    {
        var key = RegistryLayout.ExpertManifest(name, version);
        var bytes = await store.ReadAsync(key, MaxManifestBytes, cancellationToken).ConfigureAwait(false)
            ?? throw new RegistryException($"No expert {name}@{version} in {store.Location}. 'flexolmo list --registry {store.Location}' shows what is there.");
        var document = SignedDocument<ExpertManifest>.Parse(bytes, SchemaValidator.ExpertManifest, $"{store.Location}/{key}");
        if (document.Value.Name != name || document.Value.Version != version)
        {
            throw new RegistryException($"{store.Location}/{key}: the manifest says {document.Value.Reference}, not {name}@{version}; the registry was tampered with.");
        }

        return new PublishedManifest(document, FileDigest.Of(bytes));
    }

    /// <summary>
    /// The one revocation check (pull, compose, list and the server all use it). An expert counts as revoked when
    /// this machine remembers a revocation of it, or when the registry holds a record for its name and version that is
    /// signed by its owner's key (or, for an unsigned expert, any record, since nobody can tell who its owner is), or a
    /// record that cannot be verified (fail closed). It does not need the registry's copy of the manifest. A registry
    /// that cannot be read is an error, never "not revoked". Findings are remembered.
    /// </summary>
    public async Task<RevocationFinding?> CheckRevocationAsync(ExpertIdentity expert, CancellationToken cancellationToken)
    {
        if (Ledger.Find(expert) is { } remembered)
        {
            return remembered;
        }

        var keys = new List<string>();
        await foreach (var key in store.ListAsync(RegistryLayout.RevocationsOf(expert.Name, expert.Version), cancellationToken).ConfigureAwait(false))
        {
            if (keys.Count >= MaxRevocationRecords)
            {
                break;
            }

            keys.Add(key);
        }

        var legacy = RegistryLayout.LegacyRevocation(expert.Name, expert.Version);
        if (await store.ExistsAsync(legacy, cancellationToken).ConfigureAwait(false))
        {
            keys.Add(legacy);
        }

        var findings = new List<RevocationFinding>();
        foreach (var key in keys.Order(StringComparer.Ordinal))
        {
            if (await ReadRevocationAsync(expert, key, cancellationToken).ConfigureAwait(false) is { } finding)
            {
                findings.Add(finding);
            }
        }

        var first = findings.OrderBy(f => f.Basis).FirstOrDefault();
        if (first is not null && first.Basis != RevocationBasis.Unverifiable)
        {
            Ledger.Remember(expert, first);
        }

        return first;
    }

    /// <summary>
    /// Downloads an expert into <paramref name="outFolder"/> (which must not exist): into a temporary sibling first,
    /// every file checked against the manifest, the folder renamed only when all are good.
    /// </summary>
    public async Task<PulledExpert> PullExpertAsync(string reference, string outFolder, IReadOnlyCollection<SigningKey>? trusted, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var (name, requested) = Naming.ParseReference(reference);
        var version = await ResolveVersionAsync(name, requested, cancellationToken).ConfigureAwait(false);
        var manifest = (await ReadManifestAsync(name, version, cancellationToken).ConfigureAwait(false)).Document;
        var verification = await CheckUsableAsync(manifest, trusted, cancellationToken).ConfigureAwait(false);
        await DownloadAsync(manifest.Value.Files, outFolder, Encoding.UTF8.GetBytes(manifest.Serialize()), ExpertManifest.FileName, progress, cancellationToken).ConfigureAwait(false);
        return new PulledExpert(ExpertPackage.Open(outFolder, verifyFiles: false), verification); // every file was just checked on the way in
    }

    /// <summary>
    /// Refuses revoked experts and invalid signatures, and with trusted keys unsigned or untrusted ones. Without trusted
    /// keys the expert is usable but unverified, and the result says so.
    /// </summary>
    public async Task<ExpertVerification> CheckUsableAsync(SignedDocument<ExpertManifest> manifest, IReadOnlyCollection<SigningKey>? trusted, CancellationToken cancellationToken)
    {
        var trustedKeys = trusted is { Count: > 0 };
        var signer = trustedKeys
            ? ManifestSignature.Verify(manifest.Json, trusted!, manifest.Source)
            : ManifestSignature.VerifyIntegrity(manifest.Json, manifest.Source);
        if (await CheckRevocationAsync(ExpertIdentity.Of(manifest), cancellationToken).ConfigureAwait(false) is { } revocation)
        {
            throw new RegistryException(revocation.Message);
        }

        return new ExpertVerification(manifest.Value.Reference, signer, trustedKeys);
    }

    /// <summary>Downloads an anchor by "anchor:NAME", "anchor:sha256:HEX" or "sha256:HEX".</summary>
    public async Task<AnchorPackage> PullAnchorAsync(string reference, string outFolder, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var target = reference.StartsWith("anchor:", StringComparison.Ordinal) ? reference["anchor:".Length..] : reference;
        string key;
        if (target.StartsWith("sha256:", StringComparison.Ordinal))
        {
            key = RegistryLayout.AnchorManifest(target);
        }
        else
        {
            Naming.CheckName(target, "anchor name");
            var named = (await ReadAnchorsAsync(cancellationToken).ConfigureAwait(false)).Where(a => a.Document.Value.Name == target).ToList();
            key = named.Count switch
            {
                0 => throw new RegistryException($"No anchor named '{target}' in {store.Location}."),
                1 => named[0].Key,
                _ => throw new RegistryException(
                    $"{named.Count} anchors are named '{target}' in {store.Location}: {string.Join(", ", named.Select(a => $"{a.Document.Value.Fingerprint} (created {a.Document.Value.Created:yyyy-MM-dd})"))}. Pull the one you mean by fingerprint: anchor:sha256:HEX."),
            };
        }

        var content = await store.ReadAsync(key, MaxManifestBytes, cancellationToken).ConfigureAwait(false)
            ?? throw new RegistryException($"No anchor {target} in {store.Location}.");
        var manifest = SignedDocument<AnchorManifest>.Parse(content, SchemaValidator.AnchorManifest, $"{store.Location}/{key}");
        ManifestSignature.VerifyIntegrity(manifest.Json, manifest.Source);
        await DownloadAsync(manifest.Value.Files, outFolder, content, AnchorManifest.FileName, progress, cancellationToken).ConfigureAwait(false);
        var anchor = AnchorPackage.Open(outFolder);
        if (TensorFingerprint.Compute(anchor.ModelFolder) != anchor.Fingerprint)
        {
            Directory.Delete(outFolder, recursive: true);
            throw new RegistryException($"{store.Location}/{key}: the model's tensors do not match the anchor's fingerprint; nothing was kept.");
        }

        return anchor;
    }

    /// <summary>
    /// Publishes a revocation record for NAME@VERSION, bound to the digest of the manifest content and signed with
    /// <paramref name="key"/>. A signed expert can only be revoked with the key that signed it. Create-only: a
    /// revocation is final.
    /// </summary>
    public async Task<RevocationRecord> RevokeAsync(string reference, string reason, SigningKey? key, CancellationToken cancellationToken)
    {
        var (name, version) = Naming.ParseReference(reference);
        if (version is null)
        {
            throw new RegistryException($"Revoke one version: {name}@VERSION.");
        }

        var manifest = (await ReadManifestAsync(name, version, cancellationToken).ConfigureAwait(false)).Document;
        if (manifest.SignedBy is { } owner && key?.Fingerprint != owner)
        {
            throw new RegistryException($"{name}@{version} was signed by {owner}; only that key can revoke it (--sign-key).");
        }

        var record = new RevocationRecord(name, version, manifest.ContentSha256, reason, DateTimeOffset.UtcNow);
        var document = SignedDocument<RevocationRecord>.Create(record, SchemaValidator.Revocation, key);
        var path = RegistryLayout.Revocation(name, version, key?.Fingerprint);
        if (!await store.CreateIfAbsentAsync(path, Encoding.UTF8.GetBytes(document.Serialize()), cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{name}@{version} is already revoked in {store.Location} ({path}).");
        }

        var identity = ExpertIdentity.Of(manifest);
        Ledger.Remember(identity, new RevocationFinding(identity.Reference, manifest.SignedBy is null ? RevocationBasis.UnsignedExpert : RevocationBasis.Owner, reason, record.RevokedAt, key?.Fingerprint, $"{store.Location}/{path}"));
        return record;
    }

    private static (SignatureStatus Status, string? Signer) SignatureOf(SignedDocument<ExpertManifest> document)
    {
        try
        {
            return ManifestSignature.VerifyIntegrity(document.Json, document.Source) is { } signer ? (SignatureStatus.Valid, signer) : (SignatureStatus.Unsigned, null);
        }
        catch (PackageException)
        {
            return (SignatureStatus.Invalid, document.SignedBy);
        }
    }

    /// <summary>One revocation record judged against the expert; null when it is verifiably not the owner's.</summary>
    private async Task<RevocationFinding?> ReadRevocationAsync(ExpertIdentity expert, string key, CancellationToken cancellationToken)
    {
        var source = $"{store.Location}/{key}";
        RevocationFinding Unverifiable(string why) => new(expert.Reference, RevocationBasis.Unverifiable, why, null, null, source);
        byte[]? bytes;
        try
        {
            bytes = await store.ReadAsync(key, MaxRevocationBytes, cancellationToken).ConfigureAwait(false);
        }
        catch (RegistryObjectTooLargeException)
        {
            return Unverifiable("the record is larger than any revocation");
        }

        if (bytes is null)
        {
            return null; // removed between listing and reading; a remembered revocation still applies
        }

        SignedDocument<RevocationRecord> record;
        string? signer;
        try
        {
            record = SignedDocument<RevocationRecord>.Parse(bytes, SchemaValidator.Revocation, source);
            signer = ManifestSignature.VerifyIntegrity(record.Json, source);
        }
        catch (PackageException e)
        {
            return Unverifiable(e.Message);
        }

        var value = record.Value;
        if (value.Name != expert.Name || value.Version != expert.Version)
        {
            return Unverifiable($"it names {value.Name}@{value.Version}, not {expert.Reference}");
        }

        if (expert.Owner is not null && signer != expert.Owner)
        {
            return null; // signed by someone else (or not at all): not the owner's withdrawal
        }

        var detail = value.ContentSha256 is { } content && expert.ContentSha256 is { } expected && content != expected
            ? $"The record names manifest content {content}, not {expected}: the manifest was replaced after its owner revoked it."
            : null;
        return new RevocationFinding(expert.Reference, expert.Owner is null ? RevocationBasis.UnsignedExpert : RevocationBasis.Owner, value.Reason, value.RevokedAt, signer, source, Detail: detail);
    }

    private async Task<List<PublishedAnchor>> ReadAnchorsAsync(CancellationToken cancellationToken)
    {
        var anchors = new List<PublishedAnchor>();
        await foreach (var key in store.ListAsync(RegistryLayout.Anchors, cancellationToken).ConfigureAwait(false))
        {
            if (RegistryLayout.IsAnchorManifest(key) && await store.ReadAsync(key, MaxManifestBytes, cancellationToken).ConfigureAwait(false) is { } bytes)
            {
                anchors.Add(new PublishedAnchor(key, SignedDocument<AnchorManifest>.Parse(bytes, SchemaValidator.AnchorManifest, $"{store.Location}/{key}")));
            }
        }

        return anchors;
    }

    private async Task<UploadTotals> UploadOneAsync(FileDigest file, string path, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var key = RegistryLayout.Blob(file.Sha256);
        if (await store.ExistsAsync(key, cancellationToken).ConfigureAwait(false))
        {
            progress?.Report(new TransferProgress(file.Path, file.Size, file.Size, Skipped: true));
            return new UploadTotals(0, 1, 0, 0);
        }

        if (!File.Exists(path) || new FileInfo(path).Length != file.Size)
        {
            throw new PackageException($"{path}: missing or not {file.Size} bytes as the manifest says; the package is damaged.");
        }

        var result = await store.UploadFileAsync(key, path, file.Sha256, new FileProgress(file, progress), cancellationToken).ConfigureAwait(false);
        return new UploadTotals(1, 0, result.BytesSent, result.BlocksReused);
    }

    private async Task DownloadAsync(IReadOnlyList<FileDigest> files, string outFolder, byte[] manifestBytes, string manifestName, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var target = Path.GetFullPath(outFolder);
        if (Path.Exists(target))
        {
            throw new RegistryException($"{target} already exists; pull into a new folder (nothing there was changed).");
        }

        var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(target))!;
        Directory.CreateDirectory(parent);
        var temporary = Formats.AtomicFile.TemporarySibling(target, "pull");
        Directory.CreateDirectory(temporary);
        try
        {
            foreach (var file in files)
            {
                var destination = Path.GetFullPath(Path.Combine(temporary, file.Path));
                if (!destination.StartsWith(temporary + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    throw new RegistryException($"The manifest lists '{file.Path}', which would land outside the package folder; refusing it.");
                }

                Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
                var streamed = await store.DownloadFileAsync(RegistryLayout.Blob(file.Sha256), destination, new FileProgress(file, progress), cancellationToken).ConfigureAwait(false);
                var matches = streamed is not null
                    ? streamed == file.Sha256 && new FileInfo(destination).Length == file.Size
                    : FileDigest.Compute(temporary, file.Path) == file;
                if (!matches)
                {
                    throw new RegistryException($"{file.Path}: the bytes in {store.Location} do not match the manifest's sha256 {file.Sha256}; the registry copy is damaged or was tampered with. Nothing was kept.");
                }
            }

            await File.WriteAllBytesAsync(Path.Combine(temporary, manifestName), manifestBytes, cancellationToken).ConfigureAwait(false);
            Directory.Move(temporary, target);
        }
        catch
        {
            Formats.AtomicFile.TryDeleteDirectory(temporary);
            throw;
        }
    }

    private sealed record PublishedAnchor(string Key, SignedDocument<AnchorManifest> Document);

    /// <summary>Turns a store's byte counts into per-file progress reports.</summary>
    private sealed class FileProgress(FileDigest file, IProgress<TransferProgress>? inner) : IProgress<long>
    {
        public void Report(long value) => inner?.Report(new TransferProgress(file.Path, value, file.Size));
    }
}
