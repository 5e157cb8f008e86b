using System.Text;
using System.Text.Json.Nodes;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>What a publish did.</summary>
public sealed record PublishResult(string Reference, int FilesUploaded, int FilesSkipped, long BytesSent, int BlocksReused, string? SignedBy);

/// <summary>One published expert version as <c>flexolmo list</c> shows it.</summary>
public sealed record ListedExpert(
    string Name,
    string Version,
    string Owner,
    string License,
    string AnchorFingerprint,
    string? AnchorName,
    long Size,
    string? SignedBy,
    bool Revoked,
    string? RevocationReason,
    string ManifestSha256,
    string? Description);

/// <summary>An owner's revocation, once checked.</summary>
public sealed record Revocation(RevocationRecord Record, string? SignedBy);

/// <summary>
/// The registry's operations over one store: publish (files first, the manifest last and create-only), list, pull
/// (into a temporary folder, every file verified, then renamed), revoke. Used the same way for both store kinds.
/// </summary>
public sealed class ExpertRegistry(IRegistryStore store)
{
    private const long MaxManifestBytes = SignedDocument<ExpertManifest>.MaxBytes;

    public IRegistryStore Store => store;

    public async Task<PublishResult> PublishExpertAsync(string folder, SigningKey? key, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
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
        if (key is not null)
        {
            ManifestSignature.Sign(json, key);
        }

        var (uploaded, skipped, bytes, reused) = await UploadFilesAsync(folder, manifest.Files, progress, cancellationToken).ConfigureAwait(false);
        var content = Encoding.UTF8.GetBytes(json.ToJsonString(SignedDocument<ExpertManifest>.Options) + "\n");
        if (!await store.CreateIfAbsentAsync(manifestKey, content, cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{manifest.Reference} was published to {store.Location} by someone else while this upload ran; it was left untouched. Publish with a new version.");
        }

        return new PublishResult(manifest.Reference, uploaded, skipped, bytes, reused, key?.Fingerprint);
    }

    public async Task<PublishResult> PublishAnchorAsync(string folder, SigningKey? key, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var anchor = AnchorPackage.Open(folder);
        var value = anchor.Manifest.Value;
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        var files = new List<FileDigest>();
        foreach (var file in value.Files)
        {
            sources[file.Path] = Path.Combine(folder, file.Path);
            files.Add(file);
        }

        if (Path.IsPathRooted(value.Model.Path))
        {
            // The anchor refers to a model elsewhere: publish the model's files with it, as "model/...".
            foreach (var path in Directory.EnumerateFiles(value.Model.Path).Order(StringComparer.Ordinal))
            {
                var digest = FileDigest.Compute(value.Model.Path, Path.GetFileName(path)) with { Path = $"{AnchorPackage.ModelFolderName}/{Path.GetFileName(path)}" };
                sources[digest.Path] = path;
                files.Add(digest);
            }

            value = value with { Model = value.Model with { Path = AnchorPackage.ModelFolderName }, Files = files };
        }

        var document = SignedDocument<AnchorManifest>.Create(value, SchemaValidator.AnchorManifest, key);
        var manifestKey = RegistryLayout.AnchorManifest(value.Fingerprint);
        var uploaded = 0;
        var skipped = 0;
        long bytes = 0;
        var reused = 0;
        foreach (var file in files)
        {
            var (u, s, b, r) = await UploadOneAsync(file, sources[file.Path], progress, cancellationToken).ConfigureAwait(false);
            (uploaded, skipped, bytes, reused) = (uploaded + u, skipped + s, bytes + b, reused + r);
        }

        await store.CreateIfAbsentAsync(manifestKey, Encoding.UTF8.GetBytes(document.Serialize()), cancellationToken).ConfigureAwait(false);
        return new PublishResult($"anchor:{value.Name} ({value.Fingerprint})", uploaded, skipped, bytes, reused, key?.Fingerprint);
    }

    public async Task<IReadOnlyList<ListedExpert>> ListAsync(string? anchorFingerprint, CancellationToken cancellationToken)
    {
        var keys = new List<string>();
        await foreach (var key in store.ListAsync(RegistryLayout.Experts, cancellationToken).ConfigureAwait(false))
        {
            if (key.EndsWith("/" + ExpertManifest.FileName, StringComparison.Ordinal) && key.Split('/').Length == 4)
            {
                keys.Add(key);
            }
        }

        var listed = new List<ListedExpert>();
        foreach (var key in keys)
        {
            var parts = key.Split('/');
            if (!Naming.IsValidName(parts[1]) || !Naming.IsValidVersion(parts[2]))
            {
                continue;
            }

            var (document, sha) = await ReadManifestAsync(parts[1], parts[2], cancellationToken).ConfigureAwait(false);
            var m = document.Value;
            if (anchorFingerprint is not null && m.Anchor.Fingerprint != anchorFingerprint)
            {
                continue;
            }

            string? signer;
            try
            {
                signer = ManifestSignature.VerifyIntegrity(document.Json, document.Source);
            }
            catch (PackageException)
            {
                signer = "INVALID SIGNATURE";
            }

            var revocation = await RevocationAsync(document, sha, cancellationToken).ConfigureAwait(false);
            listed.Add(new ListedExpert(m.Name, m.Version, m.Owner, m.License, m.Anchor.Fingerprint, m.Anchor.Name, m.Files.Sum(f => f.Size), signer, revocation is not null, revocation?.Record.Reason, sha, m.Description));
        }

        return listed.OrderBy(e => e.Name, StringComparer.Ordinal).ThenBy(e => e.Version, VersionOrder.Instance).ToList();
    }

    /// <summary>The latest version of an expert, or the given one after checking it exists.</summary>
    public async Task<string> ResolveVersionAsync(string name, string? version, CancellationToken cancellationToken)
    {
        if (version is not null)
        {
            return version;
        }

        var versions = new List<string>();
        await foreach (var key in store.ListAsync(RegistryLayout.ExpertVersions(name), cancellationToken).ConfigureAwait(false))
        {
            var parts = key.Split('/');
            if (parts.Length == 4 && parts[3] == ExpertManifest.FileName && Naming.IsValidVersion(parts[2]))
            {
                versions.Add(parts[2]);
            }
        }

        return versions.Count > 0
            ? versions.Max(VersionOrder.Instance)!
            : throw new RegistryException($"No expert '{name}' in {store.Location}. 'flexolmo list --registry {store.Location}' shows what is there.");
    }

    /// <summary>A published manifest (validated) and the SHA-256 of its bytes as stored.</summary>
    public async Task<(SignedDocument<ExpertManifest> Manifest, string Sha256)> ReadManifestAsync(string name, string version, CancellationToken cancellationToken)
    {
        var key = RegistryLayout.ExpertManifest(name, version);
        var bytes = await store.ReadAsync(key, MaxManifestBytes, cancellationToken).ConfigureAwait(false)
            ?? throw new RegistryException($"No expert {name}@{version} in {store.Location}. 'flexolmo list --registry {store.Location}' shows what is there.");
        var document = SignedDocument<ExpertManifest>.Parse(bytes, SchemaValidator.ExpertManifest, $"{store.Location}/{key}");
        if (document.Value.Name != name || document.Value.Version != version)
        {
            throw new RegistryException($"{store.Location}/{key}: the manifest says {document.Value.Reference}, not {name}@{version}; the registry was tampered with.");
        }

        return (document, FileDigest.Of(bytes));
    }

    /// <summary>
    /// The valid revocation of a published expert, or null. A revocation counts when the manifest is unsigned, or when
    /// it is signed by the same key as the manifest (only the owner can withdraw a signed expert).
    /// </summary>
    public async Task<Revocation?> RevocationAsync(SignedDocument<ExpertManifest> manifest, string manifestSha256, CancellationToken cancellationToken)
    {
        var key = RegistryLayout.Revocation(manifest.Value.Name, manifest.Value.Version);
        var bytes = await store.ReadAsync(key, 64 * 1024, cancellationToken).ConfigureAwait(false);
        if (bytes is null)
        {
            return null;
        }

        var record = SignedDocument<RevocationRecord>.Parse(bytes, SchemaValidator.Revocation, $"{store.Location}/{key}");
        if (record.Value.ManifestSha256 != manifestSha256)
        {
            return null;
        }

        string? revoker;
        try
        {
            revoker = ManifestSignature.VerifyIntegrity(record.Json, record.Source);
        }
        catch (PackageException)
        {
            return null;
        }

        var owner = manifest.SignedBy;
        return owner is null || owner == revoker ? new Revocation(record.Value, revoker) : null;
    }

    /// <summary>
    /// Downloads an expert into <paramref name="outFolder"/> (which must not exist): into a temporary sibling first,
    /// every file checked against the manifest, the folder renamed only when all are good.
    /// </summary>
    public async Task<ExpertPackage> PullExpertAsync(string reference, string outFolder, IReadOnlyCollection<SigningKey>? trusted, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var (name, requested) = Naming.ParseReference(reference);
        var version = await ResolveVersionAsync(name, requested, cancellationToken).ConfigureAwait(false);
        var (manifest, sha) = await ReadManifestAsync(name, version, cancellationToken).ConfigureAwait(false);
        await CheckUsableAsync(manifest, sha, trusted, cancellationToken).ConfigureAwait(false);
        await DownloadAsync(manifest.Value.Files, outFolder, Encoding.UTF8.GetBytes(manifest.Serialize()), ExpertManifest.FileName, progress, cancellationToken).ConfigureAwait(false);
        return ExpertPackage.Open(outFolder, verifyFiles: false); // every file was just checked on the way in
    }

    /// <summary>Refuses revoked experts, invalid signatures, and (with trusted keys) unsigned or untrusted ones.</summary>
    public async Task<string?> CheckUsableAsync(SignedDocument<ExpertManifest> manifest, string sha, IReadOnlyCollection<SigningKey>? trusted, CancellationToken cancellationToken)
    {
        var signer = trusted is { Count: > 0 }
            ? ManifestSignature.Verify(manifest.Json, trusted, manifest.Source)
            : ManifestSignature.VerifyIntegrity(manifest.Json, manifest.Source);
        if (await RevocationAsync(manifest, sha, cancellationToken).ConfigureAwait(false) is { } revocation)
        {
            throw new RegistryException($"{manifest.Value.Reference} was revoked by its owner on {revocation.Record.RevokedAt:yyyy-MM-dd} ({revocation.Record.Reason}); it may no longer be used.");
        }

        return signer;
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
            key = string.Empty;
            await foreach (var candidate in store.ListAsync(RegistryLayout.Anchors, cancellationToken).ConfigureAwait(false))
            {
                if (!candidate.EndsWith("/" + AnchorManifest.FileName, StringComparison.Ordinal))
                {
                    continue;
                }

                var bytes = await store.ReadAsync(candidate, MaxManifestBytes, cancellationToken).ConfigureAwait(false);
                if (bytes is not null && SignedDocument<AnchorManifest>.Parse(bytes, SchemaValidator.AnchorManifest, candidate).Value.Name == target)
                {
                    key = candidate;
                }
            }

            if (key.Length == 0)
            {
                throw new RegistryException($"No anchor named '{target}' in {store.Location}.");
            }
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

    /// <summary>Publishes a revocation record for NAME@VERSION (create-only: a revocation is final).</summary>
    public async Task<RevocationRecord> RevokeAsync(string reference, string reason, SigningKey? key, CancellationToken cancellationToken)
    {
        var (name, version) = Naming.ParseReference(reference);
        if (version is null)
        {
            throw new RegistryException($"Revoke one version: {name}@VERSION.");
        }

        var (manifest, sha) = await ReadManifestAsync(name, version, cancellationToken).ConfigureAwait(false);
        if (manifest.SignedBy is { } owner && key?.Fingerprint != owner)
        {
            throw new RegistryException($"{name}@{version} was signed by {owner}; only that key can revoke it (--sign-key).");
        }

        var record = new RevocationRecord(name, version, sha, reason, DateTimeOffset.UtcNow);
        var document = SignedDocument<RevocationRecord>.Create(record, SchemaValidator.Revocation, key);
        if (!await store.CreateIfAbsentAsync(RegistryLayout.Revocation(name, version), Encoding.UTF8.GetBytes(document.Serialize()), cancellationToken).ConfigureAwait(false))
        {
            throw new RegistryException($"{name}@{version} is already revoked in {store.Location}.");
        }

        return record;
    }

    private async Task<(int Uploaded, int Skipped, long Bytes, int Reused)> UploadFilesAsync(string folder, IReadOnlyList<FileDigest> files, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var totals = (0, 0, 0L, 0);
        foreach (var file in files)
        {
            var (u, s, b, r) = await UploadOneAsync(file, Path.Combine(folder, file.Path), progress, cancellationToken).ConfigureAwait(false);
            totals = (totals.Item1 + u, totals.Item2 + s, totals.Item3 + b, totals.Item4 + r);
        }

        return totals;
    }

    private async Task<(int, int, long, int)> UploadOneAsync(FileDigest file, string path, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        var key = RegistryLayout.Blob(file.Sha256);
        if (await store.ExistsAsync(key, cancellationToken).ConfigureAwait(false))
        {
            progress?.Report(new TransferProgress(file.Path, file.Size, file.Size, Skipped: true));
            return (0, 1, 0, 0);
        }

        if (!File.Exists(path) || new FileInfo(path).Length != file.Size)
        {
            throw new PackageException($"{path}: missing or not {file.Size} bytes as the manifest says; the package is damaged.");
        }

        var result = await store.UploadFileAsync(key, path, file.Sha256, new FileProgress(file, progress), cancellationToken).ConfigureAwait(false);
        return (1, 0, result.BytesSent, result.BlocksReused);
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
        var temporary = Path.Combine(parent, $".{Path.GetFileName(Path.TrimEndingDirectorySeparator(target))}.{Guid.NewGuid():N}.pull");
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
            try
            {
                Directory.Delete(temporary, recursive: true);
            }
            catch (IOException)
            {
            }

            throw;
        }
    }

    /// <summary>Turns a store's byte counts into per-file progress reports.</summary>
    private sealed class FileProgress(FileDigest file, IProgress<TransferProgress>? inner) : IProgress<long>
    {
        public void Report(long value) => inner?.Report(new TransferProgress(file.Path, value, file.Size));
    }
}
