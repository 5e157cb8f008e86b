using System.Security.Cryptography;
using System.Text.Json.Serialization;

namespace FlexOlmo.Packages;

/// <summary>A file of a package: its path relative to the package folder, SHA-256 and size.</summary>
public sealed record FileDigest(
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("sha256")] string Sha256,
    [property: JsonPropertyName("size")] long Size)
{
    /// <summary>Hashes a file by streaming it (memory does not grow with its size).</summary>
    public static FileDigest Compute(string folder, string relativePath)
    {
        var full = System.IO.Path.Combine(folder, relativePath);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var hash = SHA256.HashData(stream);
        return new FileDigest(relativePath.Replace('\\', '/'), Prefix(hash), stream.Length);
    }

    /// <summary>The digest of a file just written, whose SHA-256 was computed as its bytes went out (its size is read from disk).</summary>
    public static FileDigest Written(string folder, string relativePath, byte[] sha256) =>
        new(relativePath.Replace('\\', '/'), Prefix(sha256), new FileInfo(System.IO.Path.Combine(folder, relativePath)).Length);

    public static string Prefix(ReadOnlySpan<byte> hash) => "sha256:" + Convert.ToHexStringLower(hash);

    public static string Of(ReadOnlySpan<byte> bytes) => Prefix(SHA256.HashData(bytes));

    /// <summary>The hex part of a "sha256:..." digest.</summary>
    public static string Hex(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) && digest.Length == 71 ? digest[7..] : throw new PackageException($"'{digest}' is not a sha256:<64 hex> digest.");

    /// <summary>Checks the file on disk against this digest; the message names the file and what differs.</summary>
    public void Verify(string folder)
    {
        var full = System.IO.Path.Combine(folder, Path);
        if (!File.Exists(full))
        {
            throw new PackageException($"{full}: listed in the manifest but missing.");
        }

        var actual = Compute(folder, Path);
        if (actual.Size != Size || actual.Sha256 != Sha256)
        {
            throw new PackageException($"{full}: content does not match the manifest (sha256 {actual.Sha256}, size {actual.Size}; expected {Sha256}, size {Size}). The file was changed or damaged.");
        }
    }
}
