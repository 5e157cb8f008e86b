using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Registry;
using Spectre.Console;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo list --registry URI [--anchor FINGERPRINT] [--json]</c>.</summary>
internal static class ListCommand
{
    private static readonly Option<string?> Registry = RegistryOptions.Registry();
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();
    private static readonly Option<string?> Anchor = new("--anchor") { Description = "Only experts trained against this anchor fingerprint (sha256:...)." };
    private static readonly Option<bool> Json = CommonOptions.Json();

    public static Command Create()
    {
        var command = new Command("list", "List the experts in a registry: name, version, owner, licence, anchor, size, signer, revoked.") { Registry, Connection, Anchor, Json };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: false, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        if (context.Get(Anchor) is { } anchor)
        {
            Packages.FileDigest.Hex(anchor); // "sha256:<64 hex>" or a message saying so
        }

        var registry = new ExpertRegistry(await RegistryOptions.OpenAsync(context, Registry, Connection).ConfigureAwait(false));
        var experts = await registry.ListAsync(context.Get(Anchor), context.CancellationToken).ConfigureAwait(false);
        if (context.Get(Json))
        {
            context.Output.WriteLine(JsonSerializer.Serialize(experts.Select(e => new
            {
                name = e.Name,
                version = e.Version,
                owner = e.Owner,
                license = e.License,
                anchor = e.AnchorFingerprint,
                anchor_name = e.AnchorName,
                size = e.Size,
                signature = e.Signature.ToString().ToLowerInvariant(),
                signed_by = e.SignedBy,
                revoked = e.Revoked,
                revocation_reason = e.Revocation?.Reason,
                revocation = e.Revocation?.Message,
                manifest_sha256 = e.ManifestSha256,
                description = e.Description,
            }), Format.Json));
            return 0;
        }

        if (experts.Count == 0)
        {
            context.Output.WriteLine($"no experts in {registry.Store.Location}");
            return 0;
        }

        var table = new Table().AddColumns("expert", "owner", "licence", "anchor", "size", "signed by", "revoked");
        foreach (var e in experts)
        {
            table.AddRow(
                Markup.Escape($"{e.Name}@{e.Version}"),
                Markup.Escape(e.Owner),
                Markup.Escape(e.License),
                Markup.Escape($"{e.AnchorName} {e.AnchorFingerprint[..19]}"),
                Format.Bytes(e.Size),
                Markup.Escape(e.Signature switch { SignatureStatus.Valid => e.SignedBy![..19], SignatureStatus.Invalid => "INVALID signature", _ => "-" }),
                e.Revocation is { } r ? Markup.Escape(r.Basis == RevocationBasis.Unverifiable ? $"unverifiable record: {r.Reason}" : $"yes: {r.Reason}") : "no");
        }

        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(context.Output), Interactive = InteractionSupport.No });
        if (!ReferenceEquals(context.Output, Console.Out) || Console.IsOutputRedirected)
        {
            console.Profile.Width = 200;
        }

        console.Write(table);
        return 0;
    }
}
