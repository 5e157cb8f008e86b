using System.CommandLine;
using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo revoke NAME@VERSION --registry URI --reason TEXT [--sign-key KEY]</c>: withdraw consent.</summary>
internal static class RevokeCommand
{
    private static readonly Argument<string> Reference = new("NAME@VERSION") { Description = "The published expert version to withdraw." };
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<string> Reason = new("--reason") { Description = "Why (shown to assemblers and operators).", Required = true };
    private static readonly Option<string?> SignKey = new("--sign-key") { Description = "The key that signed the expert (required to revoke a signed expert)." };

    public static Command Create()
    {
        var command = new Command("revoke", "Withdraw consent for a published expert: pull and compose refuse it, servers stop using it.") { Reference, Registry, Connection, Reason, SignKey };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: false, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        using var key = context.Get(SignKey) is { } path ? SigningKey.Load(path) : null;
        var registry = new ExpertRegistry(await RegistryOptions.OpenAsync(context, Registry, Connection).ConfigureAwait(false));
        var record = await registry.RevokeAsync(context.Get(Reference), context.Get(Reason), key, context.CancellationToken).ConfigureAwait(false);
        context.Output.WriteLine($"revoked {record.Name}@{record.Version} in {registry.Store.Location} ({record.Reason})");
        return 0;
    }
}
