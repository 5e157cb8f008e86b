using System.CommandLine;
using FlexOlmo.Training.RouterTuning;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo select-proxy --anchor DIR --data OWNER... --public-data PUBLIC... --out FILE.jsonl</c>: public documents like an owner's data, for router tuning.</summary>
internal static class SelectProxyCommand
{
    private static readonly Option<string> Anchor = new("--anchor") { Description = "The anchor package (or model folder) whose tokenizer the classifier reads with.", Required = true };
    private static readonly Option<string[]> Data = new("--data") { Description = "Your documents (.txt, .jsonl(.gz)): the classifier learns what they look like; they are never copied.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string[]> PublicData = new("--public-data") { Description = "Public documents to choose from.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> Out = new("--out") { Description = "A .jsonl file of the selected public documents.", Required = true };
    private static readonly Option<double> Fraction = new("--fraction") { Description = "Share of the public documents to select (the most owner-like).", DefaultValueFactory = _ => 0.1 };

    public static Command Create()
    {
        var command = new Command("select-proxy", "Select the public documents most like your data with a small classifier (yours against public), as proxy data for tune-router; only public text is written.")
        {
            Anchor, Data, PublicData, Out, Fraction,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var result = ProxySelector.Select(
            new ProxyRequest { Anchor = context.Get(Anchor), OwnerData = context.Get(Data), PublicData = context.Get(PublicData), Out = context.Get(Out), Fraction = context.Get(Fraction) },
            new SyncProgress<string>(l => context.Error.WriteLine(l)),
            context.CancellationToken);
        context.Output.WriteLine(Format.Invariant($"{result.Selected} of {result.PublicDocuments} public documents written to {result.Out}; next: flexolmo tune-router --model COMPOSED --data {context.Get(Out)} ... --out DIR"));
        return 0;
    }
}
