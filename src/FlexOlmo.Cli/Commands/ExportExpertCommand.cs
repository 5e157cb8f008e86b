using System.CommandLine;
using FlexOlmo.Composition;
using FlexOlmo.Composition.Released;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo export-expert PKG --anchor ANCHOR_DIR --out DIR</c>: a package as a 2-expert Hugging Face checkpoint.</summary>
internal static class ExportExpertCommand
{
    private static readonly Argument<string> Package = new("package") { Description = "The expert package folder." };
    private static readonly Option<string> Anchor = new("--anchor") { Description = "The anchor it was trained against.", Required = true };
    private static readonly Option<string> Out = new("--out") { Description = "Model folder to create.", Required = true };
    private static readonly Option<string> Shard = new("--shard-size") { Description = "Largest safetensors shard, as Hugging Face writes it.", DefaultValueFactory = _ => "5GB" };

    public static Command Create()
    {
        var command = new Command("export-expert", "Write an expert on its anchor as the 2-expert flex_olmo checkpoint the released Flex-DOMAIN-2x7B models are, for transformers.")
        {
            Package, Anchor, Out, Shard,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var result = ExpertExporter.Export(
            new ExportRequest
            {
                Package = context.Get(Package),
                Anchor = context.Get(Anchor),
                Out = context.Get(Out),
                ShardBytes = ShardSize.Parse(context.Get(Shard), "--shard-size"),
            },
            new SyncProgress<string>(l => context.Error.WriteLine(l)),
            context.CancellationToken);
        foreach (var warning in result.Warnings)
        {
            context.Error.WriteLine($"WARNING: {warning}");
        }

        context.Output.WriteLine($"exported {result.Sidecar.Experts[1].Name} to {result.Folder} ({Format.Bytes(result.Bytes)}, {result.Config.StorageDType}): 2 experts, top-2, loads with transformers' AutoModelForCausalLM");
        return 0;
    }
}
