namespace FlexOlmo.Registry;

/// <summary>
/// Where a registry keeps its objects: a local folder or an Azure Blob container (with an optional prefix). Keys are
/// relative paths built only from validated names, versions and hex digests (see <see cref="RegistryLayout"/>).
/// </summary>
public interface IRegistryStore
{
    /// <summary>The registry as the user named it (for messages).</summary>
    string Location { get; }

    Task<bool> ExistsAsync(string key, CancellationToken cancellationToken);

    /// <summary>
    /// Uploads a local file to <paramref name="key"/> (large files resumably); the object appears only when complete, and
    /// only if the file's SHA-256 is <paramref name="expectedSha256"/> (a changed or damaged file is refused, naming it).
    /// </summary>
    Task<UploadResult> UploadFileAsync(string key, string localPath, string expectedSha256, IProgress<long>? progress, CancellationToken cancellationToken);

    /// <summary>Creates a small object only if none exists at <paramref name="key"/>; false when one already does.</summary>
    Task<bool> CreateIfAbsentAsync(string key, byte[] content, CancellationToken cancellationToken);

    /// <summary>Reads a small object; null when absent. Refuses objects larger than <paramref name="maxBytes"/>.</summary>
    Task<byte[]?> ReadAsync(string key, long maxBytes, CancellationToken cancellationToken);

    /// <summary>
    /// Downloads an object to a local file, reporting bytes as they arrive. Returns the SHA-256 ("sha256:...") when the
    /// store hashed the bytes on the way (one pass), or null when the caller must hash the file.
    /// </summary>
    Task<string?> DownloadFileAsync(string key, string localPath, IProgress<long>? progress, CancellationToken cancellationToken);

    /// <summary>Keys under a prefix.</summary>
    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken);
}

/// <summary>How an upload went: bytes sent, and blocks reused from an interrupted earlier attempt.</summary>
public sealed record UploadResult(long BytesSent, int BlocksReused, int BlocksSent);
