using System.CommandLine;
using FlexOlmo.Composition.Released;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo import-expert --model DIR --anchor ANCHOR_DIR --name NAME --out PKG</c>: a released 2-expert model as a package.</summary>
internal static class ImportExpertCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "A 2-expert flex_olmo checkpoint folder (such as a released Flex-DOMAIN-2x7B-1T).", Required = true };
    private static readonly Option<string> Anchor = new("--anchor") { Description = "The anchor it was trained against (prepare-anchor's folder).", Required = true };
    private static readonly Option<string> Name = new("--name") { Description = "The expert's name (1-64 of a-z, 0-9, '.', '_', '-').", Required = true };
    private static readonly Option<string?> Version = new("--version") { Description = "Its version (default: the model's sidecar's, else 1.0.0)." };
    private static readonly Option<string?> Owner = new("--owner") { Description = "Who owns it (default: the model's sidecar's, else 'unspecified')." };
    private static readonly Option<string?> License = new("--license") { Description = "SPDX licence (default: the model's sidecar's, else LicenseRef-unspecified)." };
    private static readonly Option<string?> Description = new("--description") { Description = "What it knows." };
    private static readonly Option<string> Out = new("--out") { Description = "Package folder to create.", Required = true };

    public static Command Create()
    {
        var command = new Command("import-expert", "Turn a 2-expert flex_olmo model into an expert package, after checking byte for byte that everything but its expert is the anchor.")
        {
            Model, Anchor, Name, Version, Owner, License, Description, Out,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var package = ExpertImporter.Import(
            new ImportRequest
            {
                Model = context.Get(Model),
                Anchor = context.Get(Anchor),
                Name = context.Get(Name),
                Version = context.Get(Version),
                Owner = context.Get(Owner),
                License = context.Get(License),
                Description = context.Get(Description),
                Out = context.Get(Out),
            },
            new SyncProgress<string>(l => context.Error.WriteLine(l)),
            context.CancellationToken);
        var manifest = package.Manifest.Value;
        context.Output.WriteLine($"imported {manifest.Reference} ({manifest.Owner}, {manifest.License}) on anchor {manifest.Anchor.Name} into {package.Folder}");
        context.Output.WriteLine($"router bias: {(manifest.Origin?.RouterBias == "from-sidecar" ? "from the model's sidecar" : "none (released checkpoints carry none)")}; sign and publish it with 'flexolmo publish {package.Folder} --key KEY'");
        return 0;
    }
}
