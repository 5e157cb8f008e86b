using System.CommandLine;
using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo publish DIR --registry URI [--sign-key KEY]</c>: an expert package or an anchor.</summary>
internal static class PublishCommand
{
    private static readonly Argument<string> Folder = new("DIR") { Description = "An expert package (expert.json) or anchor folder (anchor.json)." };
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<string?> SignKey = new("--sign-key") { Description = "Your private signing key (from 'flexolmo keys create'); the manifest carries the signature." };

    public static Command Create()
    {
        var command = new Command("publish", "Upload an expert or anchor: files first (skipping blobs already there), the manifest last and only if that version is new.")
        {
            Folder, Registry, Connection, SignKey,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: false, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var folder = context.Get(Folder);
        using var key = context.Get(SignKey) is { } path ? SigningKey.Load(path) : null;
        var registry = new ExpertRegistry(await RegistryOptions.OpenAsync(context, Registry, Connection, create: true).ConfigureAwait(false));
        var result = await TransferDisplay.RunAsync(context, progress => AnchorPackage.IsPackage(folder)
            ? registry.PublishAnchorAsync(folder, key, progress, context.CancellationToken)
            : registry.PublishExpertAsync(folder, key, progress, context.CancellationToken)).ConfigureAwait(false);
        if (result.AlreadyPublished)
        {
            context.Output.WriteLine($"{result.Reference} is already published in {registry.Store.Location}; nothing was uploaded or changed");
            return 0;
        }

        context.Output.WriteLine(
            $"published {result.Reference} to {registry.Store.Location}: {result.FilesUploaded} file(s) uploaded ({Format.Bytes(result.BytesSent)}), {result.FilesSkipped} already there" +
            (result.BlocksReused > 0 ? $", resumed an interrupted upload ({result.BlocksReused} part(s) already there)" : string.Empty) +
            (result.SignedBy is { } s ? $"; signed by {s}" : "; unsigned"));
        return 0;
    }
}
