using System.CommandLine;
using FlexOlmo.Composition;
using FlexOlmo.Composition.Released;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo decompose --model DIR --out FOLDER</c>: a composed model back into its anchor and expert packages.</summary>
internal static class DecomposeCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "A flex_olmo checkpoint (composed by this tool, or released such as FlexOlmo-7x7B-1T).", Required = true };
    private static readonly Option<string> Out = new("--out") { Description = "Folder to create: anchor/ and experts/NAME/.", Required = true };
    private static readonly Option<string> Shard = new("--shard-size") { Description = "Largest safetensors shard of the anchor's model.", DefaultValueFactory = _ => "5GB" };

    public static Command Create()
    {
        var command = new Command("decompose", "Split a composed FlexOlmo model into its anchor and one expert package per expert (compose them again, with or without some, to rebuild it).")
        {
            Model, Out, Shard,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var result = Decomposer.Decompose(
            new DecomposeRequest { Model = context.Get(Model), Out = context.Get(Out), ShardBytes = ShardSize.Parse(context.Get(Shard), "--shard-size") },
            new SyncProgress<string>(l => context.Error.WriteLine(l)),
            context.CancellationToken);
        foreach (var warning in result.Warnings)
        {
            context.Error.WriteLine($"WARNING: {warning}");
        }

        context.Output.WriteLine($"anchor {result.Anchor.Manifest.Value.Name} ({result.Anchor.Fingerprint}) in {result.Anchor.Folder}");
        foreach (var expert in result.Experts)
        {
            var m = expert.Manifest.Value;
            context.Output.WriteLine($"  expert {m.Origin!.SourceExpert}: {m.Reference} ({m.Owner}) in {expert.Folder}");
        }

        context.Output.WriteLine("compose them again with a recipe that lists the anchor and the experts you want; leave one out to rebuild the model without it.");
        return 0;
    }
}
