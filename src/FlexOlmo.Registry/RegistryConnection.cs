using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace FlexOlmo.Registry;

/// <summary>
/// Opens the store a registry URI names: a folder path or <c>file://</c> URI, or an Azure Blob container
/// <c>https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]</c> (Azurite: <c>http://127.0.0.1:PORT/ACCOUNT/CONTAINER</c>),
/// authenticated by a connection string (option or AZURE_STORAGE_CONNECTION_STRING), a SAS in the URI, or
/// DefaultAzureCredential. Only publishing creates a registry; everything else needs one that exists.
/// </summary>
public static class RegistryConnection
{
    public const string ConnectionStringVariable = "AZURE_STORAGE_CONNECTION_STRING";

    /// <summary>The embedded default: the folder "registry" in <see cref="Formats.FlexOlmoHome"/> (~/.flexolmo/registry).</summary>
    public static string DefaultLocal => Path.Combine(Formats.FlexOlmoHome.Path, "registry");

    /// <summary>"~/x" is the user's home folder followed by x (as a shell would expand it).</summary>
    public static string ExpandHome(string path) =>
        path == "~" || path.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path.Length > 2 ? path[2..] : string.Empty)
            : path;

    /// <summary>
    /// Checks that a registry location is a folder path, a file:// URI or an http(s) blob container URI, without
    /// touching it (a server checks this at startup, before it depends on the registry being reachable).
    /// </summary>
    public static void CheckSyntax(string uri)
    {
        var location = ExpandHome(uri.Trim());
        var scheme = location.IndexOf("://", StringComparison.Ordinal) is > 0 and var at ? location[..at].ToLowerInvariant() : null;
        switch (scheme)
        {
            case null:
                return;
            case "file":
                Parse(location);
                return;
            case "http" or "https":
                var parsed = Parse(location);
                if (parsed.Host.Length == 0 || parsed.AbsolutePath.Trim('/').Length == 0)
                {
                    throw new RegistryException($"--registry {location.Split('?')[0]}: name a container, e.g. https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix].");
                }

                return;
            default:
                throw new RegistryException($"--registry {location.Split('?')[0]}: '{scheme}://' is not a registry; use a folder, file:// or https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix].");
        }
    }

    /// <param name="create">Create the folder or container when it does not exist (publish); otherwise its absence is an error.</param>
    public static async Task<IRegistryStore> OpenAsync(string? uri, string? connectionString, CancellationToken cancellationToken, bool create = false)
    {
        var location = string.IsNullOrWhiteSpace(uri) ? DefaultLocal : ExpandHome(uri.Trim());
        CheckSyntax(location);
        if (location.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
        {
            return new LocalStore(Parse(location).LocalPath, create);
        }

        if (!location.StartsWith("https://", StringComparison.OrdinalIgnoreCase) && !location.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return new LocalStore(location, create);
        }

        var parsed = Parse(location);
        var display = location.Split('?')[0];
        BlobUriBuilder builder;
        try
        {
            builder = new BlobUriBuilder(parsed);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
        {
            throw new RegistryException($"--registry {display}: not a blob container URI ({e.Message}); use https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix].");
        }

        if (string.IsNullOrEmpty(builder.BlobContainerName))
        {
            throw new RegistryException($"--registry {display}: name a container, e.g. https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix].");
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
        try
        {
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
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException or InvalidOperationException)
        {
            throw new RegistryException($"--registry {display}: cannot use the connection string ({e.Message}). Check --connection-string or ${ConnectionStringVariable}.");
        }

        var store = new AzureBlobStore(container, prefix, display);
        await store.EnsureContainerAsync(cancellationToken, create).ConfigureAwait(false);
        return store;
    }

    private static Uri Parse(string location)
    {
        try
        {
            return new Uri(location);
        }
        catch (UriFormatException e)
        {
            throw new RegistryException($"--registry {location.Split('?')[0]}: not a valid URI ({e.Message}).");
        }
    }
}
