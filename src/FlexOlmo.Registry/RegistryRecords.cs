using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>What a publish did. <see cref="AlreadyPublished"/>: the same content was already there; nothing changed.</summary>
public sealed record PublishResult(string Reference, int FilesUploaded, int FilesSkipped, long BytesSent, int BlocksReused, string? SignedBy, bool AlreadyPublished = false);

/// <summary>One published expert version as <c>flexolmo list</c> shows it.</summary>
public sealed record ListedExpert(
    string Name,
    string Version,
    string Owner,
    string License,
    string AnchorFingerprint,
    string? AnchorName,
    long Size,
    SignatureStatus Signature,
    string? SignedBy,
    RevocationFinding? Revocation,
    string ManifestSha256,
    string? Description)
{
    public bool Revoked => Revocation is not null;
}

/// <summary>A published manifest (validated against its schema) and the SHA-256 of its bytes as stored.</summary>
public sealed record PublishedManifest(SignedDocument<ExpertManifest> Document, string Sha256);

/// <summary>A pulled expert package and how far its origin was verified.</summary>
public sealed record PulledExpert(ExpertPackage Package, ExpertVerification Verification);

/// <summary>Bytes and files moved by an upload.</summary>
internal readonly record struct UploadTotals(int Uploaded, int Skipped, long Bytes, int Reused)
{
    public static UploadTotals operator +(UploadTotals a, UploadTotals b) => new(a.Uploaded + b.Uploaded, a.Skipped + b.Skipped, a.Bytes + b.Bytes, a.Reused + b.Reused);
}
