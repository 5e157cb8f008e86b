using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace FlexOlmo.Registry;

/// <summary>
/// Opens the store a registry URI names: a folder path or <c>file://</c> URI, or an Azure Blob container
/// <c>https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]</c> (Azurite: <c>http://127.0.0.1:PORT/ACCOUNT/CONTAINER</c>),
/// authenticated by a connection string (option or AZURE_STORAGE_CONNECTION_STRING), a SAS in the URI, or
/// DefaultAzureCredential.
/// </summary>
public static class RegistryConnection
{
    public const string ConnectionStringVariable = "AZURE_STORAGE_CONNECTION_STRING";

    /// <summary>The embedded default: ~/.flexolmo/registry.</summary>
    public static string DefaultLocal => Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".flexolmo", "registry");

    /// <summary>"~/x" is the user's home folder followed by x (as a shell would expand it).</summary>
    public static string ExpandHome(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.Length > 2 ? path[2..] : string.Empty)
            : path;

    public static async Task<IRegistryStore> OpenAsync(string? uri, string? connectionString, CancellationToken cancellationToken)
    {
        var location = string.IsNullOrWhiteSpace(uri) ? DefaultLocal : ExpandHome(uri.Trim());
        if (location.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
        {
            return new LocalStore(new Uri(location).LocalPath);
        }

        if (!location.StartsWith("https://", StringComparison.OrdinalIgnoreCase) && !location.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return new LocalStore(location);
        }

        var parsed = new Uri(location);
        var builder = new BlobUriBuilder(parsed);
        if (string.IsNullOrEmpty(builder.BlobContainerName))
        {
            throw new RegistryException($"--registry {location}: name a container, e.g. https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix].");
        }

        var prefix = builder.BlobName ?? string.Empty;
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = 5;
        options.Retry.Mode = RetryMode.Exponential;
        options.Retry.Delay = TimeSpan.FromMilliseconds(250);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(8);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(100);
        BlobContainerClient container;
        var connection = connectionString ?? Environment.GetEnvironmentVariable(ConnectionStringVariable);
        var display = location.Split('?')[0];
        if (!string.IsNullOrEmpty(parsed.Query) && parsed.Query.Contains("sig=", StringComparison.Ordinal))
        {
            container = new BlobContainerClient(new BlobUriBuilder(parsed) { BlobName = string.Empty }.ToUri(), options);
        }
        else if (!string.IsNullOrWhiteSpace(connection))
        {
            container = new BlobServiceClient(connection, options).GetBlobContainerClient(builder.BlobContainerName);
        }
        else
        {
            var serviceUri = new BlobUriBuilder(parsed) { BlobContainerName = string.Empty, BlobName = string.Empty, Query = string.Empty }.ToUri();
            container = new BlobServiceClient(serviceUri, new DefaultAzureCredential(), options).GetBlobContainerClient(builder.BlobContainerName);
        }

        var store = new AzureBlobStore(container, prefix, display);
        await store.EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        return store;
    }
}
