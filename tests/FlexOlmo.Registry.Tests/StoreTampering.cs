using Azure.Storage.Blobs;

namespace FlexOlmo.Registry.Tests;

/// <summary>Changes objects behind the registry's back, as an attacker (or an operator's mistake) with write access to the storage could.</summary>
internal static class StoreTampering
{
    public static async Task OverwriteAsync(RegistryStores stores, IRegistryStore store, string key, byte[] content)
    {
        if (store is LocalStore)
        {
            await File.WriteAllBytesAsync(Path.Combine(store.Location, key), content);
            return;
        }

        await Blob(stores, store, key).UploadAsync(BinaryData.FromBytes(content), overwrite: true);
    }

    public static async Task DeleteAsync(RegistryStores stores, IRegistryStore store, string key)
    {
        if (store is LocalStore)
        {
            File.Delete(Path.Combine(store.Location, key));
            return;
        }

        await Blob(stores, store, key).DeleteIfExistsAsync();
    }

    private static BlobClient Blob(RegistryStores stores, IRegistryStore store, string key)
    {
        var uri = new Uri(store.Location);
        var segments = uri.AbsolutePath.Trim('/').Split('/');
        var container = new BlobServiceClient(stores.Azurite.ConnectionString).GetBlobContainerClient(segments[1]);
        var prefix = string.Join('/', segments.Skip(2));
        return container.GetBlobClient(prefix.Length == 0 ? key : $"{prefix}/{key}");
    }
}
