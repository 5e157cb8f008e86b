using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>
/// The registry's object names:
/// <c>blobs/sha256/HEX</c> (file contents, content-addressed, shared by every package),
/// <c>experts/NAME/VERSION/expert.json</c> (immutable manifests),
/// <c>anchors/HEX/anchor.json</c> (anchors by fingerprint),
/// <c>revocations/NAME/VERSION.json</c> (an owner's withdrawal of consent).
/// </summary>
public static class RegistryLayout
{
    public const string Experts = "experts/";
    public const string Anchors = "anchors/";
    public const string Revocations = "revocations/";

    public static string Blob(string sha256) => $"blobs/sha256/{FileDigest.Hex(sha256)}";

    public static string ExpertManifest(string name, string version) => $"{Experts}{Naming.CheckName(name)}/{Naming.CheckVersion(version)}/{Packages.ExpertManifest.FileName}";

    public static string ExpertVersions(string name) => $"{Experts}{Naming.CheckName(name)}/";

    public static string AnchorManifest(string fingerprint) => $"{Anchors}{FileDigest.Hex(fingerprint)}/{Packages.AnchorManifest.FileName}";

    public static string Revocation(string name, string version) => $"{Revocations}{Naming.CheckName(name)}/{Naming.CheckVersion(version)}.json";

    /// <summary>Checks a key built elsewhere (or listed by a store): relative, no "..", only safe characters.</summary>
    public static string CheckKey(string key)
    {
        if (key.Length is 0 or > 512 || key.StartsWith('/') || key.Contains('\\') || key.Split('/').Any(s => s is "" or "." or "..")
            || key.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '/' or '.' or '_' or '-' or '+')))
        {
            throw new RegistryException($"Refusing registry path '{key}': only relative paths of letters, digits and . _ - + are allowed.");
        }

        return key;
    }
}
