using System.CommandLine;
using FlexOlmo.Packages;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo keys create --out FILE</c>: an owner's ECDSA P-256 signing key (FILE) and public key (FILE.pub).</summary>
internal static class KeysCommand
{
    private static readonly Option<string> Out = new("--out") { Description = "Private key file to create (mode 600); the public key goes to FILE.pub.", Required = true };

    public static Command Create()
    {
        var create = new Command("create", "Create a signing key pair.") { Out };
        create.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        var command = new Command("keys", "Manage owners' signing keys.");
        command.Subcommands.Add(create);
        return command;
    }

    private static int Run(CommandContext context)
    {
        using var key = SigningKey.Create(context.Get(Out));
        context.Output.WriteLine($"private key {context.Get(Out)} (keep it secret), public key {context.Get(Out)}.pub; fingerprint {key.Fingerprint}");
        return 0;
    }
}
