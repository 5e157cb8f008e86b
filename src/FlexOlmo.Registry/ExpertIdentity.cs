using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>
/// What a revocation check knows of an expert, from a local package, a composed model's sidecar or a published
/// manifest: its name and version, the digest of its canonical manifest content (null for sidecars written before
/// content digests) and its owner's key fingerprint (null when unsigned). Checks never need the registry's copy of
/// the manifest, so deleting or rewriting that copy cannot hide a revocation.
/// </summary>
public sealed record ExpertIdentity(string Name, string Version, string? ContentSha256, string? Owner)
{
    public string Reference => $"{Name}@{Version}";

    public static ExpertIdentity Of(SignedDocument<ExpertManifest> manifest) =>
        new(manifest.Value.Name, manifest.Value.Version, manifest.ContentSha256, manifest.SignedBy);
}
