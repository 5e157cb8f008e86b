using System.CommandLine;
using FlexOlmo.Composition;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo compose --recipe RECIPE.yaml [--out DIR]</c>: assemble an opt-in FlexOlmo model.</summary>
internal static class ComposeCommand
{
    private static readonly Option<string> RecipePath = new("--recipe") { Description = "Recipe (YAML; see recipes/ and schemas/recipe.schema.json).", Required = true };
    private static readonly Option<string?> Out = new("--out") { Description = "Output folder (default: the recipe's output.path)." };
    private static readonly Option<string?> Connection = RegistryOptions.ConnectionString();

    public static Command Create()
    {
        var command = new Command("compose", "Check a recipe's anchor and experts (trust, revocation, pins, dimensions) and write a Hugging Face flex_olmo checkpoint.")
        {
            RecipePath, Out, Connection,
        };
        command.SetAction((parseResult, ct) => CommandRunner.RunAsync(parseResult, needsTorch: true, RunAsync, ct));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context)
    {
        var recipe = Recipe.Load(context.Get(RecipePath));
        var result = await Composer.ComposeAsync(recipe, context.Get(Out), context.Get(Connection), new SyncProgress<string>(l => context.Error.WriteLine(l)), context.CancellationToken).ConfigureAwait(false);
        context.Output.WriteLine($"composed {recipe.Name} into {result.Folder} ({Format.Bytes(result.Bytes)}): {result.Config.NumExperts} experts, top-{result.Config.NumExpertsPerTok}");
        foreach (var expert in result.Sidecar.Experts)
        {
            context.Output.WriteLine($"  expert {expert.Index}: {expert.Name}{(expert.Version is null ? string.Empty : "@" + expert.Version)}  ({expert.Owner}, {expert.License}){(expert.SignedBy is { } s ? $" signed by {s[..19]}{(expert.Verified == true ? " (trusted)" : " (UNVERIFIED)")}" : expert.Index > 0 ? " unsigned (UNVERIFIED)" : string.Empty)}");
        }

        foreach (var warning in result.Warnings)
        {
            context.Error.WriteLine($"WARNING: {warning}");
        }

        context.Output.WriteLine($"try: flexolmo generate --model {result.Folder} --prompt \"...\" --exclude-experts {(result.Sidecar.Experts.Count > 1 ? result.Sidecar.Experts[1].Name : "1")}");
        return 0;
    }
}
