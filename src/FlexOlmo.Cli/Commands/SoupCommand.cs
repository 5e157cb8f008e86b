using System.CommandLine;
using System.Globalization;
using FlexOlmo.Composition;
using FlexOlmo.Composition.Merging;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo soup --model COMPOSED [--weights NAME=W...] --out DIR</c>: the model-soup baseline, one dense model.</summary>
internal static class SoupCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "A composed FlexOlmo model folder.", Required = true };
    private static readonly Option<string[]> Weights = new("--weights")
    {
        Description = "Weight per expert as NAME=W (public for the anchor's FFN); experts not named get 0, and the weights are normalised to sum 1. Default: uniform over all experts.",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<string> Out = new("--out") { Description = "New dense OLMo-2 model folder.", Required = true };
    private static readonly Option<string> Shard = new("--shard-size") { Description = "Largest safetensors shard.", DefaultValueFactory = _ => "5GB" };

    public static Command Create()
    {
        var command = new Command("soup", "Average the experts' FFNs of a composed model into one dense model (the model-soup baseline FlexOlmo is compared with).")
        {
            Model, Weights, Out, Shard,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var result = ModelSoup.Merge(
            new SoupRequest { Model = context.Get(Model), Weights = ParseWeights(context.ParseResult.GetValue(Weights) ?? []), Out = context.Get(Out), ShardBytes = ShardSize.Parse(context.Get(Shard), "--shard-size") },
            context.CancellationToken);
        var weights = string.Join(", ", result.Weights.Select(w => Format.Invariant($"{w.Key} {w.Value:0.###}")));
        context.Output.WriteLine($"soup of {context.Get(Model)} written to {result.Folder} (weights: {weights})");
        return 0;
    }

    private static Dictionary<string, double> ParseWeights(string[] items)
    {
        var weights = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            var equals = item.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || !double.TryParse(item.AsSpan(equals + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var weight))
            {
                throw new SoupException($"--weights '{item}': write NAME=WEIGHT, for example news=0.5.");
            }

            if (!weights.TryAdd(item[..equals], weight))
            {
                throw new SoupException($"--weights: '{item[..equals]}' is given twice.");
            }
        }

        return weights;
    }
}
