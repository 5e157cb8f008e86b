using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace FlexOlmo.Registry;

/// <summary>
/// A registry in an Azure Blob container (or under a prefix in it). Large files go up as blocks staged in parallel
/// with deterministic ids derived from the content and position, so an interrupted upload restarted later finds its
/// finished blocks among the uncommitted ones and sends only the rest. The block list is committed last, so a
/// reader never sees a partial object; manifests use If-None-Match: * so a published version is never overwritten.
/// Transient storage errors are retried with exponential backoff by the SDK; anything that still fails (an
/// unreachable account, a refused credential, a connection that drops) becomes a <see cref="RegistryException"/>
/// that says what was being done and how to go on. A container that does not exist is an error, never an empty
/// registry, unless the caller is publishing.
/// </summary>
public sealed class AzureBlobStore : IRegistryStore
{
    public const int DefaultBlockSize = 8 << 20;

    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly int _blockSize;
    private readonly int _parallelism;

    public AzureBlobStore(BlobContainerClient container, string prefix, string location, int blockSize = DefaultBlockSize, int parallelism = 8)
    {
        _container = container;
        _prefix = prefix.Length == 0 || prefix.EndsWith('/') ? prefix : prefix + "/";
        Location = location;
        _blockSize = blockSize;
        _parallelism = parallelism;
    }

    public string Location { get; }

    /// <summary>Fires after each block is staged (tests use it to stop the server mid-upload).</summary>
    public event Action<int>? BlockStaged;

    /// <param name="create">Create the container when missing (publishing); otherwise a missing container is an error.</param>
    public async Task EnsureContainerAsync(CancellationToken cancellationToken, bool create = true)
    {
        bool exists;
        try
        {
            if (create)
            {
                await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                return;
            }

            exists = await _container.ExistsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail("open the container", e);
        }

        if (!exists)
        {
            throw new RegistryException($"No registry at {Location}: the container {_container.Name} does not exist (or is gone). Check --registry; 'flexolmo publish' creates a new registry.");
        }
    }

    public async Task<bool> ExistsAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            return await Blob(key).ExistsAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail($"check {key}", e);
        }
    }

    public async Task<UploadResult> UploadFileAsync(string key, string localPath, string expectedSha256, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        // Blocks go up in parallel, so the file is hashed first (one sequential read) rather than on the way.
        var actual = Packages.FileDigest.Compute(Path.GetDirectoryName(Path.GetFullPath(localPath))!, Path.GetFileName(localPath)).Sha256;
        if (actual != expectedSha256)
        {
            throw new Packages.PackageException($"{localPath}: its sha256 is {actual}, not {expectedSha256} as the manifest says; the package changed or is damaged.");
        }

        var blob = _container.GetBlockBlobClient(_prefix + RegistryLayout.CheckKey(key));
        var length = new FileInfo(localPath).Length;
        var blocks = (int)Math.Max(1, (length + _blockSize - 1) / _blockSize);
        var salt = Salt(localPath, length);
        var ids = Enumerable.Range(0, blocks).Select(i => BlockId(salt, i)).ToArray();
        try
        {
            var staged = await StagedBlocksAsync(blob, cancellationToken).ConfigureAwait(false);
            long sent = 0;
            long done = 0;
            var reused = 0;
            using var gate = new SemaphoreSlim(_parallelism);
            var tasks = new List<Task>();
            for (var i = 0; i < blocks; i++)
            {
                var index = i;
                var size = (int)Math.Min(_blockSize, length - ((long)index * _blockSize));
                if (staged.TryGetValue(ids[index], out var stagedSize) && stagedSize == size)
                {
                    reused++;
                    progress?.Report(Interlocked.Add(ref done, size));
                    continue;
                }

                await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                tasks.Add(Task.Run(
                    async () =>
                    {
                        // Pooled buffers keep memory at (parallelism x block size) whatever the file's size.
                        var buffer = ArrayPool<byte>.Shared.Rent(size);
                        try
                        {
                            using (var handle = File.OpenHandle(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous))
                            {
                                await RandomAccess.ReadAsync(handle, buffer.AsMemory(0, size), (long)index * _blockSize, cancellationToken).ConfigureAwait(false);
                            }

                            using var stream = new MemoryStream(buffer, 0, size, writable: false);
                            await blob.StageBlockAsync(ids[index], stream, cancellationToken: cancellationToken).ConfigureAwait(false);
                            Interlocked.Add(ref sent, size);
                            progress?.Report(Interlocked.Add(ref done, size));
                            BlockStaged?.Invoke(index);
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                            gate.Release();
                        }
                    },
                    cancellationToken));
            }

            await Task.WhenAll(tasks).ConfigureAwait(false);
            await blob.CommitBlockListAsync(ids, cancellationToken: cancellationToken).ConfigureAwait(false);
            return new UploadResult(sent, reused, blocks - reused);
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail($"upload {key}", e, "Nothing was published. Run the same publish again when the storage is reachable: blocks already sent are kept and reused.");
        }
    }

    public async Task<bool> CreateIfAbsentAsync(string key, byte[] content, CancellationToken cancellationToken)
    {
        try
        {
            await Blob(key).UploadAsync(BinaryData.FromBytes(content), new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            return false;
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail($"create {key}", e);
        }
    }

    public async Task<byte[]?> ReadAsync(string key, long maxBytes, CancellationToken cancellationToken)
    {
        try
        {
            var blob = Blob(key);
            var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            if (properties.Value.ContentLength > maxBytes)
            {
                throw new RegistryObjectTooLargeException($"{Location}: {key} has {properties.Value.ContentLength} bytes, more than the {maxBytes} allowed.");
            }

            var content = await blob.DownloadContentAsync(new BlobDownloadOptions { Conditions = new BlobRequestConditions { IfMatch = properties.Value.ETag } }, cancellationToken).ConfigureAwait(false);
            return content.Value.Content.ToArray();
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail($"read {key}", e);
        }
    }

    public async Task<string?> DownloadFileAsync(string key, string localPath, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        try
        {
            await Blob(key).DownloadToAsync(
                localPath,
                new BlobDownloadToOptions
                {
                    TransferOptions = new Azure.Storage.StorageTransferOptions { MaximumConcurrency = _parallelism, InitialTransferSize = _blockSize, MaximumTransferSize = _blockSize },
                    ProgressHandler = progress,
                },
                cancellationToken).ConfigureAwait(false);
            return null; // downloaded in parallel ranges: the caller hashes the file
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new RegistryException($"{Location}: {key} is missing; the registry is incomplete.");
        }
        catch (Exception e) when (IsStorageFailure(e, cancellationToken))
        {
            throw Fail($"download {key}", e, "Nothing was kept; run the same pull again when the storage is reachable.");
        }
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var pages = _container.GetBlobsAsync(new GetBlobsOptions { Prefix = _prefix + prefix }, cancellationToken).ConfigureAwait(false);
        await using var enumerator = pages.GetAsyncEnumerator();
        while (true)
        {
            try
            {
                if (!await enumerator.MoveNextAsync())
                {
                    break;
                }
            }
            catch (Exception e) when (IsStorageFailure(e, cancellationToken))
            {
                throw Fail($"list {prefix}", e);
            }

            yield return enumerator.Current.Name[_prefix.Length..];
        }
    }

    private BlobClient Blob(string key) => _container.GetBlobClient(_prefix + RegistryLayout.CheckKey(key));

    /// <summary>Whatever the SDK or the network threw, except our own errors and a cancellation the user asked for.</summary>
    private static bool IsStorageFailure(Exception e, CancellationToken cancellationToken) =>
        e is not RegistryException and not Packages.PackageException and not OutOfMemoryException
        && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested);

    private static async Task<Dictionary<string, long>> StagedBlocksAsync(BlockBlobClient blob, CancellationToken cancellationToken)
    {
        try
        {
            var list = await blob.GetBlockListAsync(BlockListTypes.Uncommitted, cancellationToken: cancellationToken).ConfigureAwait(false);
            return list.Value.UncommittedBlocks.ToDictionary(b => b.Name, b => b.SizeLong);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }
    }

    /// <summary>Ties block ids to this file's size and first bytes, so blocks of another file are never reused.</summary>
    private static string Salt(string path, long length)
    {
        var head = new byte[(int)Math.Min(1 << 16, length)];
        using (var stream = File.OpenRead(path))
        {
            stream.ReadExactly(head);
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(length.ToString(System.Globalization.CultureInfo.InvariantCulture)).Concat(head).ToArray()))[..16];
    }

    /// <summary>Block ids must all have the same length; the index makes them unique within the blob.</summary>
    private static string BlockId(string salt, int index) => Convert.ToBase64String(Encoding.ASCII.GetBytes($"{salt}-{index:D8}"));

    private RegistryException Fail(string what, Exception e, string? next = null)
    {
        var cause = e switch
        {
            RequestFailedException { Status: > 0 } r => $"{r.Status} {r.ErrorCode ?? string.Empty} {FirstLine(r.Message)}".TrimEnd(),
            AggregateException { InnerException: { } inner } => FirstLine(inner.Message),
            OperationCanceledException => "the storage did not answer in time",
            _ => FirstLine(e.Message),
        };
        var hint = e is RequestFailedException { Status: 401 or 403 } || e.GetType().Name.Contains("Authentication", StringComparison.Ordinal) || e.GetType().Name.Contains("Credential", StringComparison.Ordinal)
            ? "Check the credentials (--connection-string, a SAS in the URI, or az login)."
            : "Check that the storage account is reachable (network, firewall, the URI).";
        return new RegistryException($"{Location}: could not {what}: {cause}. {hint}{(next is null ? string.Empty : " " + next)}");
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
