using System.CommandLine;
using FlexOlmo.Evaluation;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo eval --model DIR --data NAME=PATH... [--masks SPEC...] --out PREFIX</c>: perplexity by expert mask and domain.</summary>
internal static class EvalCommand
{
    private static readonly Option<string> Model = new("--model") { Description = "A composed or dense model folder, an anchor folder, or an expert package (with --anchor).", Required = true };
    private static readonly Option<string?> Anchor = new("--anchor") { Description = "The anchor folder an expert package was trained against." };
    private static readonly Option<string[]> Data = new("--data") { Description = "Held-out text per domain: NAME=PATH (a .txt/.jsonl(.gz) file, folder or glob); repeat for each domain.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string[]> Masks = new("--masks")
    {
        Description = "Expert masks to compare, separated by spaces: composed (all experts), anchor (the public expert alone), only:X, without:X, or an include list such as public+news. " +
            "Default: composed, anchor, and only:X and without:X for every expert.",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<long> MaxTokens = new("--max-tokens") { Description = "Predicted tokens per domain at most (windows spread evenly over the text).", DefaultValueFactory = _ => 65536 };
    private static readonly Option<int?> SeqLen = new("--seq-len") { Description = $"Tokens per window (default: the model's context, at most {PerplexityEvaluator.DefaultMaxSeqLen})." };
    private static readonly Option<int> BatchSize = new("--batch-size") { Description = "Windows per forward pass.", DefaultValueFactory = _ => 8 };
    private static readonly Option<string> Out = new("--out") { Description = "Report prefix: writes PREFIX.json, PREFIX.md and PREFIX.html.", Required = true };
    private static readonly Option<bool> Json = CommonOptions.Json();
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("eval", "Perplexity of a model on held-out text per domain, for each expert mask; writes a JSON, Markdown and HTML (heat map) report.")
        {
            Model, Anchor, Data, Masks, MaxTokens, SeqLen, BatchSize, Out, Json, Device, DType, TokenCacheFolder,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var request = new EvaluationRequest
        {
            Model = context.Get(Model),
            Anchor = context.Get(Anchor),
            Domains = EvaluationDomain.Parse(context.Get(Data)),
            Masks = context.ParseResult.GetValue(Masks),
            MaxTokens = context.Get(MaxTokens),
            SeqLen = context.Get(SeqLen),
            BatchSize = context.Get(BatchSize),
            Device = context.Get(Device),
            DType = context.Get(DType),
            TokenCache = context.Get(TokenCacheFolder),
        };
        var report = PerplexityEvaluator.Evaluate(
            request,
            new SyncProgress<string>(line => context.Error.WriteLine(line)),
            new SyncProgress<EvaluationProgress>(p => context.Error.WriteLine(Format.Invariant($"[{p.Done}/{p.Total}] {p.Mask} on {p.Domain}: perplexity {p.Perplexity:0.00}"))),
            context.CancellationToken);
        var paths = report.Save(context.Get(Out));
        if (context.Get(Json))
        {
            context.Output.Write(report.ToJson());
            return 0;
        }

        ReportTable.Write(context.Output, report);
        context.Output.WriteLine($"report: {string.Join(", ", paths)}");
        return 0;
    }
}
