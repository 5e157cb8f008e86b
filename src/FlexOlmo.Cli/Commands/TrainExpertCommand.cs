using System.CommandLine;
using FlexOlmo.Training;
using FlexOlmo.Training.Experts;

namespace FlexOlmo.Cli.Commands;

/// <summary>
/// <c>flexolmo train-expert --anchor DIR --data PATH... --name NAME --out DIR</c>: a data owner trains an FFN expert on
/// premises against the frozen anchor and gets a publishable expert package.
/// </summary>
internal static class TrainExpertCommand
{
    private static readonly TrainingSettings Defaults = new() { SeqLen = 2048, BatchTokens = 65536, Lr = 9e-4, WeightDecay = 0 };
    private static readonly TrainingOptions Training = new(Defaults);
    private static readonly Option<string> Anchor = new("--anchor") { Description = "Anchor folder (from prepare-anchor).", Required = true };
    private static readonly Option<string[]> Data = new("--data") { Description = "Your data: .txt, .jsonl(.gz) with a \"text\" field, .npy/.bin token shards; files, folders or globs.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> Name = new("--name") { Description = "Expert name (a-z, 0-9, '.', '_', '-').", Required = true };
    private static readonly Option<string> Version = new("--version") { Description = "Expert version.", DefaultValueFactory = _ => "1.0.0" };
    private static readonly Option<string> Out = new("--out") { Description = "Output folder for the expert package, checkpoints and metrics.jsonl.", Required = true };
    private static readonly Option<string?> RouterEmbedding = new("--router-embedding") { Description = "Initial router row r_i (.safetensors from embed-domain, .npy or .json from any embedder)." };
    private static readonly Option<int> Samples = new("--samples") { Description = "Documents sampled for the domain embedding.", DefaultValueFactory = _ => 1000 };
    private static readonly Option<string> Owner = new("--owner") { Description = "Who owns this expert (a person or organisation; published in its manifest).", Required = true };
    private static readonly Option<string> License = new("--license") { Description = "SPDX licence expression of the expert.", DefaultValueFactory = _ => "LicenseRef-unspecified" };
    private static readonly Option<string?> Description = new("--description") { Description = "What the expert knows." };
    private static readonly Option<double> RouterLrScale = new("--router-lr-scale")
    {
        Description = "Learning rate of the router row and bias as a multiple of --lr (1 as the paper; lower keeps routing closer to the domain embedding, which helps small models).",
        DefaultValueFactory = _ => 1.0,
    };

    private static readonly Option<string> Ablation = new Option<string>("--ablation")
    {
        Description = "For studies only: train one of the paper's ablations instead of the method. no-bias: b_i stays 0; no-init: a random router row and no bias; " +
            "no-coordination: the FFN fine-tuned alone as a dense model, r_i kept at the domain embedding. Recorded in the manifest.",
        DefaultValueFactory = _ => "none",
    }.AcceptOnlyFromAmong([.. ExpertAblation.Named.Keys]);

    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("train-expert", "Train your FFN expert on your own data against a frozen public anchor (the data never leaves this machine).")
        {
            Anchor, Data, Name, Version, Out, RouterEmbedding, Samples, Owner, License, Description, RouterLrScale, Ablation, Device, DType, TokenCacheFolder,
        };
        foreach (var option in Training.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var request = new ExpertTrainingRequest
        {
            Anchor = context.Get(Anchor),
            Data = context.Get(Data),
            Name = context.Get(Name),
            Version = context.Get(Version),
            Out = context.Get(Out),
            RouterEmbedding = context.Get(RouterEmbedding),
            Samples = context.Get(Samples),
            Owner = context.Get(Owner),
            License = context.Get(License),
            Description = context.Get(Description),
            Settings = Training.Settings(context.ParseResult, Defaults) with { RouterLrScale = context.Get(RouterLrScale) },
            Ablation = ExpertAblation.Named[context.Get(Ablation)],
            Device = context.Get(Device),
            DType = context.Get(DType),
            Resume = context.ParseResult.GetValue(Training.Resume),
            RawTokenBytes = Training.RawTokenBytes(context.ParseResult),
            TokenCache = context.Get(TokenCacheFolder),
        };
        var result = TrainingDisplay.Run(context, $"expert {request.Name}", (log, progress) => ExpertTrainer.Train(request, log, progress, context.CancellationToken));
        if (result.Outcome.Interrupted)
        {
            context.Error.WriteLine($"interrupted at step {result.Outcome.Steps}; checkpoint saved in {result.OutFolder}. Continue with the same command and --resume.");
            return 130;
        }

        var manifest = result.Package!.Manifest.Value;
        context.Output.WriteLine($"expert {manifest.Reference} written to {result.OutFolder} ({manifest.Training!.Steps} steps, {manifest.Training.Tokens} tokens)");
        if (result.Validation is { } v)
        {
            context.Output.WriteLine(Format.Invariant($"validation perplexity: anchor alone {v.AnchorPerplexity:0.00}, anchor + expert {v.ExpertPerplexity:0.00} ({v.Tokens} held-out tokens)"));
            if (v.ExpertPerplexity >= v.AnchorPerplexity)
            {
                context.Error.WriteLine(
                    "warning: the expert does not beat the anchor on your held-out data. Train on more tokens (--tokens) or raise --lr; " +
                    "for small models, --router-z-loss 0 and --router-lr-scale 0.1 help (see README, 'Small models').");
            }
        }

        var report = Path.TrimEndingDirectorySeparator(result.OutFolder) + ".extraction.json";
        context.Output.WriteLine($"check what it gives back of your text: flexolmo audit-extraction --model {result.OutFolder} --anchor {request.Anchor} --data {string.Join(' ', request.Data)} --out {report}");
        context.Output.WriteLine($"next: flexolmo publish {result.OutFolder} (add --audit {report} to publish the audit's result)");
        return 0;
    }
}
