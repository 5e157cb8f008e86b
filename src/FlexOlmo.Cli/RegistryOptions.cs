using System.CommandLine;
using FlexOlmo.Registry;

namespace FlexOlmo.Cli;

/// <summary>The options that name a registry, shared by publish, list, pull, revoke, compose and serve.</summary>
internal static class RegistryOptions
{
    public static Option<string?> Registry() => new("--registry")
    {
        Description = $"A folder, file:// URI or https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix] (default {RegistryConnection.DefaultLocal}).",
    };

    public static Option<string?> ConnectionString() => new("--connection-string")
    {
        Description = $"Azure Storage connection string (also ${RegistryConnection.ConnectionStringVariable}); else a SAS in the URI or DefaultAzureCredential.",
    };

    /// <param name="create">Only publish creates a registry; every other command needs one that exists.</param>
    public static Task<IRegistryStore> OpenAsync(CommandContext context, Option<string?> registry, Option<string?> connection, bool create = false) =>
        RegistryConnection.OpenAsync(context.ParseResult.GetValue(registry), context.ParseResult.GetValue(connection), context.CancellationToken, create);
}
