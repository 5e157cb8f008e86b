using System.CommandLine;
using FlexOlmo.Evaluation.Extraction;

namespace FlexOlmo.Cli.Commands;

/// <summary>
/// <c>flexolmo audit-extraction --model PKG|DIR [--anchor ANCHOR] --data FILES... --out REPORT</c>: how much of an owner's
/// training text a model reproduces from a prefix (paper §5.3).
/// </summary>
internal static class AuditExtractionCommand
{
    private static readonly Option<string[]> Model = new("--model") { Description = "An expert package (with --anchor) or a composed model folder; repeat to audit several.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string?> Anchor = new("--anchor") { Description = "The anchor folder: audited alone as the baseline, and the base of expert packages." };
    private static readonly Option<string[]> Data = new("--data") { Description = "The owner's training documents: .txt, .jsonl(.gz) with a \"text\" field, or token shards; files, folders or globs.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<int> Prefix = new("--prefix") { Description = "Tokens of each document given to the model.", DefaultValueFactory = _ => 32 };
    private static readonly Option<int> Continuation = new("--continuation") { Description = "Tokens the model generates and that are compared with the document's own.", DefaultValueFactory = _ => 256 };
    private static readonly Option<int> Samples = new("--samples") { Description = "Samples per document; the closest one counts.", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> Documents = new("--documents") { Description = "Documents sampled from the data (those long enough for prefix + continuation).", DefaultValueFactory = _ => 100 };
    private static readonly Option<double> Threshold = new("--threshold") { Description = "Normalised Levenshtein similarity from which a document counts as extracted.", DefaultValueFactory = _ => 0.9 };
    private static readonly Option<double> Temperature = new("--temperature") { Description = "Sampling temperature of the continuations.", DefaultValueFactory = _ => 1.0 };
    private static readonly Option<long> Seed = new("--seed") { Description = "Seed of the document sample and of the sampling.", DefaultValueFactory = _ => 0 };
    private static readonly Option<string> Out = new("--out") { Description = "The report: REPORT (JSON), and REPORT with .md (a table). publish --audit REPORT carries it in the manifest.", Required = true };
    private static readonly Option<bool> Json = CommonOptions.Json();
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("audit-extraction", "How much of an owner's training text a model reproduces: the share of documents whose continuation it regenerates from a prefix, for the anchor alone and each model.")
        {
            Model, Anchor, Data, Prefix, Continuation, Samples, Documents, Threshold, Temperature, Seed, Out, Json, Device, DType, TokenCacheFolder,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var request = new ExtractionRequest
        {
            Models = context.Get(Model),
            Anchor = context.Get(Anchor),
            Data = context.Get(Data),
            Prefix = context.Get(Prefix),
            Continuation = context.Get(Continuation),
            Samples = context.Get(Samples),
            Documents = context.Get(Documents),
            Threshold = context.Get(Threshold),
            Temperature = context.Get(Temperature),
            Seed = context.Get(Seed),
            Device = context.Get(Device),
            DType = context.Get(DType),
            TokenCache = context.Get(TokenCacheFolder),
        };
        var report = ExtractionAudit.Run(request, new SyncProgress<string>(line => context.Error.WriteLine(line)), context.CancellationToken);
        var paths = report.Save(context.Get(Out));
        if (context.Get(Json))
        {
            context.Output.Write(report.ToJson());
            return 0;
        }

        foreach (var row in report.Rows)
        {
            context.Output.WriteLine(Format.Invariant($"{row.Model,-24} {row.Kind,-32} extracted {row.Extracted}/{row.Documents} ({row.Rate:P1}), mean best similarity {row.MeanBestSimilarity:0.000}"));
        }

        context.Output.WriteLine($"report: {string.Join(", ", paths)}");
        return 0;
    }
}
