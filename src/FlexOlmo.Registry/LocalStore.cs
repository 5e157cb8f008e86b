using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace FlexOlmo.Registry;

/// <summary>
/// A registry in a local folder (the embedded default). Objects are written under a temporary name and renamed;
/// create-only objects use a rename that fails when the target exists, so two writers never overwrite each other.
/// A file upload that is interrupted leaves a <c>.HEX.partial</c> beside its blob, and the next upload of the same
/// content continues from it. A registry folder that does not exist (or disappears) is an error, never an empty
/// registry: an empty answer would hide revocations.
/// </summary>
public sealed class LocalStore : IRegistryStore
{
    private const int Chunk = 8 << 20;
    private readonly string _root;

    /// <param name="create">Create the folder when missing (publishing); otherwise a missing folder is an error.</param>
    public LocalStore(string root, bool create = true)
    {
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        if (create)
        {
            Directory.CreateDirectory(_root);
        }

        EnsureRoot();
    }

    public string Location => _root;

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(key)));

    public async Task<UploadResult> UploadFileAsync(string key, string localPath, string expectedSha256, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var partial = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.partial");
        FileStream output;
        try
        {
            // FileShare.None takes an exclusive lock: a second upload of the same content at the same time writes its own temporary.
            output = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.Asynchronous);
        }
        catch (IOException)
        {
            partial = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.partial");
            output = new FileStream(partial, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.Asynchronous);
        }

        var length = new FileInfo(localPath).Length;
        long reused;
        string actual;
        await using (output.ConfigureAwait(false))
        {
            (reused, actual) = await ContinueAsync(output, localPath, length, progress, cancellationToken).ConfigureAwait(false);
            if (actual != expectedSha256 && reused > 0)
            {
                // The partial file held other bytes (a different file with the same digest was never possible): start over.
                output.SetLength(0);
                (reused, actual) = await ContinueAsync(output, localPath, length, progress, cancellationToken).ConfigureAwait(false);
            }

            if (actual == expectedSha256)
            {
                output.Flush(flushToDisk: true);
            }
        }

        if (actual != expectedSha256)
        {
            TryDelete(partial);
            throw new Packages.PackageException($"{localPath}: its sha256 is {actual}, not {expectedSha256} as the manifest says; the package changed or is damaged.");
        }

        try
        {
            File.Move(partial, target, overwrite: false);
        }
        catch (IOException) when (File.Exists(target))
        {
            TryDelete(partial); // content-addressed: another upload of the same bytes won the race
        }

        return new UploadResult(length - reused, reused > 0 ? 1 : 0, 1);
    }

    public async Task<bool> CreateIfAbsentAsync(string key, byte[] content, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        if (File.Exists(target))
        {
            return false;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        await File.WriteAllBytesAsync(temporary, content, cancellationToken).ConfigureAwait(false);
        try
        {
            File.Move(temporary, target, overwrite: false); // fails if another writer created it meanwhile
            return true;
        }
        catch (IOException) when (File.Exists(target))
        {
            File.Delete(temporary);
            return false;
        }
    }

    public async Task<byte[]?> ReadAsync(string key, long maxBytes, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            return null;
        }

        if (info.Length > maxBytes)
        {
            throw new RegistryObjectTooLargeException($"{Location}: {key} has {info.Length} bytes, more than the {maxBytes} allowed.");
        }

        return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
    }

    public async Task<string?> DownloadFileAsync(string key, string localPath, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var source = PathOf(key);
        if (!File.Exists(source))
        {
            throw new RegistryException($"{Location}: {key} is missing; the registry is incomplete.");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        await using var output = new FileStream(localPath, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        await CopyAsync(input, output, hash, progress, 0, cancellationToken).ConfigureAwait(false);
        return Packages.FileDigest.Prefix(hash.GetHashAndReset());
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var folder = PathOf(prefix.TrimEnd('/'));
        if (!Directory.Exists(folder))
        {
            EnsureRoot(); // an absent sub-folder is an empty listing; an absent registry is not
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Path.GetFileName(file).StartsWith('.'))
            {
                continue; // a temporary of an upload in progress
            }

            yield return Path.GetRelativePath(_root, file).Replace('\\', '/');
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>Hashes what an earlier attempt left in <paramref name="output"/>, then appends the rest of the file.</summary>
    private static async Task<(long Reused, string Sha256)> ContinueAsync(FileStream output, string localPath, long length, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var reused = output.Length <= length ? output.Length : 0;
        output.SetLength(reused);
        output.Position = 0;
        var buffer = new byte[Chunk];
        long hashed = 0;
        while (hashed < reused)
        {
            var read = await output.ReadAsync(buffer.AsMemory(0, (int)Math.Min(Chunk, reused - hashed)), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            hash.AppendData(buffer, 0, read);
            hashed += read;
        }

        await using var input = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        input.Position = reused;
        output.Position = reused;
        progress?.Report(reused);
        await CopyAsync(input, output, hash, progress, reused, cancellationToken).ConfigureAwait(false);
        return (reused, Packages.FileDigest.Prefix(hash.GetHashAndReset()));
    }

    /// <summary>Copies in 8 MiB chunks, hashing each chunk while its write is in flight.</summary>
    private static async Task CopyAsync(Stream input, Stream output, IncrementalHash hash, IProgress<long>? progress, long done, CancellationToken cancellationToken)
    {
        var buffer = new byte[Chunk];
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            var write = output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            hash.AppendData(buffer, 0, read);
            await write.ConfigureAwait(false);
            done += read;
            progress?.Report(done);
        }
    }

    private void EnsureRoot()
    {
        if (!Directory.Exists(_root))
        {
            throw new RegistryException($"No registry at {_root}: the folder does not exist (or is gone). Check --registry; 'flexolmo publish' creates a new registry.");
        }
    }

    private string PathOf(string key)
    {
        RegistryLayout.CheckKey(key);
        EnsureRoot();
        var full = Path.GetFullPath(Path.Combine(_root, key));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new RegistryException($"Refusing registry path '{key}': it leaves {_root}.");
        }

        return full;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }
}
