using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace FlexOlmo.Registry;

/// <summary>
/// A registry in a local folder (the embedded default). Objects are written under a temporary name and renamed;
/// create-only objects use a rename that fails when the target exists, so two writers never overwrite each other.
/// </summary>
public sealed class LocalStore : IRegistryStore
{
    private readonly string _root;

    public LocalStore(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(_root);
    }

    public string Location => _root;

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(key)));

    public async Task<UploadResult> UploadFileAsync(string key, string localPath, string expectedSha256, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = Temporary(target);
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await Copy(localPath, temporary, progress, cancellationToken, hash).ConfigureAwait(false);
            var actual = Packages.FileDigest.Prefix(hash.GetHashAndReset());
            if (actual != expectedSha256)
            {
                throw new Packages.PackageException($"{localPath}: its sha256 is {actual}, not {expectedSha256} as the manifest says; the package changed or is damaged.");
            }

            try
            {
                File.Move(temporary, target, overwrite: false);
            }
            catch (IOException) when (File.Exists(target))
            {
                File.Delete(temporary); // content-addressed: another upload of the same bytes won the race
            }

            return new UploadResult(new FileInfo(localPath).Length, 0, 1);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    public async Task<bool> CreateIfAbsentAsync(string key, byte[] content, CancellationToken cancellationToken)
    {
        var target = PathOf(key);
        if (File.Exists(target))
        {
            return false;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var temporary = Temporary(target);
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
            throw new RegistryException($"{Location}: {key} has {info.Length} bytes, more than the {maxBytes} allowed.");
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
        await Copy(source, localPath, progress ?? new Progress<long>(), cancellationToken, hash).ConfigureAwait(false);
        return Packages.FileDigest.Prefix(hash.GetHashAndReset());
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var folder = Path.Combine(_root, prefix.TrimEnd('/'));
        if (!Directory.Exists(folder))
        {
            yield break;
        }

        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetFileName(file);
            if (name.StartsWith('.'))
            {
                continue; // a temporary of an upload in progress
            }

            yield return Path.GetRelativePath(_root, file).Replace('\\', '/');
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    private string PathOf(string key)
    {
        RegistryLayout.CheckKey(key);
        var full = Path.GetFullPath(Path.Combine(_root, key));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new RegistryException($"Refusing registry path '{key}': it leaves {_root}.");
        }

        return full;
    }

    private static string Temporary(string target) => Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");

    /// <summary>Copies with File.Copy (the kernel's copy path) when no progress is wanted, else in 8 MiB chunks.</summary>
    private static async Task Copy(string source, string target, IProgress<long>? progress, CancellationToken cancellationToken, IncrementalHash? hash = null)
    {
        if (progress is null && hash is null)
        {
            File.Copy(source, target, overwrite: true);
            return;
        }

        const int Chunk = 8 << 20;
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan | FileOptions.Asynchronous);
        await using var output = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
        var buffer = new byte[Chunk];
        long done = 0;
        int read;
        while ((read = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            var write = output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            hash?.AppendData(buffer, 0, read); // hash while the write is in flight
            await write.ConfigureAwait(false);
            done += read;
            progress?.Report(done);
        }
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
