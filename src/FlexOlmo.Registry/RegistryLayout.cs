using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>A published expert version as its registry key names it.</summary>
public readonly record struct ExpertKey(string Name, string Version);

/// <summary>
/// The registry's object names, and the one place that builds and parses them:
/// <c>blobs/sha256/HEX</c> (file contents, content-addressed, shared by every package),
/// <c>experts/NAME/VERSION/expert.json</c> (immutable manifests),
/// <c>anchors/HEX/anchor.json</c> (anchors by fingerprint),
/// <c>revocations/NAME/VERSION/SIGNER.json</c> (an owner's withdrawal of consent, one per signing key: the key's hex
/// fingerprint, or <c>unsigned</c>; so nobody can take the place where the owner's record belongs). Records of older
/// versions sit at <c>revocations/NAME/VERSION.json</c> and are still read.
/// </summary>
public static class RegistryLayout
{
    public const string Experts = "experts/";
    public const string Anchors = "anchors/";
    public const string Revocations = "revocations/";
    public const string UnsignedRevoker = "unsigned";

    public static string Blob(string sha256) => $"blobs/sha256/{FileDigest.Hex(sha256)}";

    public static string ExpertManifest(string name, string version) => $"{Experts}{Naming.CheckName(name)}/{Naming.CheckVersion(version)}/{Packages.ExpertManifest.FileName}";

    public static string ExpertVersions(string name) => $"{Experts}{Naming.CheckName(name)}/";

    public static string AnchorManifest(string fingerprint) => $"{Anchors}{FileDigest.Hex(fingerprint)}/{Packages.AnchorManifest.FileName}";

    /// <summary>Where the revocation of NAME@VERSION signed by <paramref name="signer"/> (null: unsigned) is written.</summary>
    public static string Revocation(string name, string version, string? signer) =>
        $"{RevocationsOf(name, version)}{(signer is null ? UnsignedRevoker : FileDigest.Hex(signer))}.json";

    /// <summary>The folder of every revocation record of NAME@VERSION.</summary>
    public static string RevocationsOf(string name, string version) => $"{Revocations}{Naming.CheckName(name)}/{Naming.CheckVersion(version)}/";

    /// <summary>Where records written by earlier versions of the tool sit (one per expert version).</summary>
    public static string LegacyRevocation(string name, string version) => $"{Revocations}{Naming.CheckName(name)}/{Naming.CheckVersion(version)}.json";

    /// <summary>NAME and VERSION of an <c>experts/NAME/VERSION/expert.json</c> key; null for any other key.</summary>
    public static ExpertKey? ParseExpertManifest(string key)
    {
        var parts = key.Split('/');
        return parts.Length == 4 && parts[0] + "/" == Experts && parts[3] == Packages.ExpertManifest.FileName && Naming.IsValidName(parts[1]) && Naming.IsValidVersion(parts[2])
            ? new ExpertKey(parts[1], parts[2])
            : null;
    }

    /// <summary>Whether a key is an anchor manifest (<c>anchors/HEX/anchor.json</c>).</summary>
    public static bool IsAnchorManifest(string key)
    {
        var parts = key.Split('/');
        return parts.Length == 3 && parts[0] + "/" == Anchors && parts[1].Length == 64 && parts[1].All(char.IsAsciiHexDigitLower) && parts[2] == Packages.AnchorManifest.FileName;
    }

    /// <summary>Checks a key built elsewhere (or listed by a store): relative, no "..", only safe characters.</summary>
    public static string CheckKey(string key)
    {
        if (key.Length is 0 or > 512 || key.StartsWith('/') || key.Contains('\\') || key.Split('/').Any(s => s is "" or "." or "..")
            || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+')))
        {
            throw new RegistryException($"Refusing registry path '{Naming.Printable(key)}': only relative paths of letters, digits and . _ - + are allowed.");
        }

        return key;
    }
}
