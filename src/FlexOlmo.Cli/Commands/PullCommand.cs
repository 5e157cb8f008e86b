using System.CommandLine;
using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo pull NAME[@VERSION] --registry URI --out DIR [--trusted-key PUB...]</c> (also anchor:NAME, anchor:sha256:...).</summary>
internal static class PullCommand
{
    private static readonly Argument<string> Reference = new("REF") { Description = "NAME[@VERSION] of an expert (latest when no version), or anchor:NAME / anchor:sha256:HEX." };
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<string> Out = new("--out") { Description = "Folder to create.", Required = true };
    private static readonly Option<string[]> Trusted = new("--trusted-key") { Description = "Public keys (.pub) one of which must have signed the expert.", AllowMultipleArgumentsPerToken = true };

    public static Command Create()
    {
        var command = new Command("pull", "Download an expert or anchor into a new folder; every file is checked against the manifest before the folder appears.")
        {
            Reference, Registry, Connection, Out, Trusted,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: false, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var reference = context.Get(Reference);
        var trusted = (context.Get(Trusted) ?? []).Select(SigningKey.Load).ToList();
        try
        {
            var registry = new ExpertRegistry(await RegistryOptions.OpenAsync(context, Registry, Connection).ConfigureAwait(false));
            if (reference.StartsWith("anchor:", StringComparison.Ordinal) || reference.StartsWith("sha256:", StringComparison.Ordinal))
            {
                var anchor = await TransferDisplay.RunAsync(context, progress => registry.PullAnchorAsync(reference, context.Get(Out), progress, context.CancellationToken)).ConfigureAwait(false);
                context.Output.WriteLine($"pulled anchor {anchor.Manifest.Value.Name} ({anchor.Fingerprint}) into {anchor.Folder}");
                return 0;
            }

            var pulled = await TransferDisplay.RunAsync(context, progress => registry.PullExpertAsync(reference, context.Get(Out), trusted, progress, context.CancellationToken)).ConfigureAwait(false);
            var m = pulled.Package.Manifest.Value;
            context.Output.WriteLine($"pulled {m.Reference} ({m.Owner}, {m.License}) into {pulled.Package.Folder}; every file matches the manifest" + (pulled.Verification.Trusted ? $"; signed by trusted key {pulled.Verification.Signer}" : string.Empty));
            if (pulled.Verification.Warning is { } warning)
            {
                context.Error.WriteLine($"WARNING: {warning}");
            }

            return 0;
        }
        finally
        {
            trusted.ForEach(k => k.Dispose());
        }
    }
}
