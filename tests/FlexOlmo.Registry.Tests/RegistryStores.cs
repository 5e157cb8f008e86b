using Azure.Core;
using Azure.Storage.Blobs;

namespace FlexOlmo.Registry.Tests;

/// <summary>One Azurite server for the registry tests, and fresh stores of both kinds.</summary>
public sealed class RegistryStores : IDisposable
{
    private int _containers;

    public AzuriteServer Azurite { get; } = new();

    public TempDirectory Temp { get; } = new("registry");

    public static IEnumerable<object[]> Kinds => [["local"], ["azure"]];

    /// <summary>A new, empty registry of the given kind (a fresh folder or container).</summary>
    public async Task<IRegistryStore> NewAsync(string kind)
    {
        var n = Interlocked.Increment(ref _containers);
        return kind == "local"
            ? await RegistryConnection.OpenAsync(Path.Combine(Temp.Path, $"local-{n}"), null, CancellationToken.None, create: true)
            : await RegistryConnection.OpenAsync(Azurite.RegistryUri($"registry{n}", "team/prefix"), Azurite.ConnectionString, CancellationToken.None, create: true);
    }

    /// <summary>An Azure store with small blocks and quick retries (for the interrupted-upload test).</summary>
    public async Task<AzureBlobStore> SmallBlocksAsync(string container)
    {
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = 1;
        options.Retry.Mode = RetryMode.Fixed;
        options.Retry.Delay = TimeSpan.FromMilliseconds(100);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(10);
        var client = new BlobServiceClient(Azurite.ConnectionString, options).GetBlobContainerClient(container);
        var store = new AzureBlobStore(client, string.Empty, Azurite.RegistryUri(container), blockSize: 256 * 1024, parallelism: 2);
        await store.EnsureContainerAsync(CancellationToken.None);
        return store;
    }

    public void Dispose()
    {
        Azurite.Dispose();
        Temp.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class RegistryCollection : ICollectionFixture<RegistryStores>
{
    public const string Name = "registry";
}
