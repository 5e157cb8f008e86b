using System.CommandLine;
using FlexOlmo.Training;
using FlexOlmo.Training.Pretraining;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo pretrain --config CONFIG.json|--preset NAME --data PATH... --out DIR</c>: a small dense OLMo-2 from scratch.</summary>
internal static class PretrainCommand
{
    private static readonly TrainingSettings Defaults = new() { SeqLen = 512, BatchTokens = 16384, Lr = 3e-3, WeightDecay = 0.1 };
    private static readonly TrainingOptions Training = new(Defaults);
    private static readonly Option<string?> Config = new("--config") { Description = "An olmo2 config.json describing the model to train." };
    private static readonly Option<string?> Preset = new("--preset") { Description = $"A named shape instead of --config: {string.Join(", ", FlexOlmo.Core.Configuration.ModelPresets.Names)}." };
    private static readonly Option<string[]> Data = new("--data") { Description = "Training data (.txt, .jsonl(.gz), .npy/.bin).", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> Out = new("--out") { Description = "Output model folder.", Required = true };
    private static readonly Option<string?> Tokenizer = new("--tokenizer") { Description = "dolma2 or a tokenizer.json (copied into the model folder)." };
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = new("--dtype") { Description = "float32 or bfloat16.", DefaultValueFactory = _ => "float32" };
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("pretrain", "Train a small dense OLMo-2 from scratch (all weights, weight decay 0.1) into a Hugging Face checkpoint folder.")
        {
            Config, Preset, Data, Out, Tokenizer, Device, DType, TokenCacheFolder,
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
        var request = new PretrainRequest
        {
            Config = context.Get(Config),
            Preset = context.Get(Preset),
            Data = context.Get(Data),
            Out = context.Get(Out),
            Tokenizer = context.Get(Tokenizer),
            Settings = Training.Settings(context.ParseResult, Defaults),
            Device = context.Get(Device),
            DType = context.Get(DType),
            Resume = context.ParseResult.GetValue(Training.Resume),
            RawTokenBytes = Training.RawTokenBytes(context.ParseResult),
            TokenCache = context.Get(TokenCacheFolder),
        };
        var (outcome, perplexity) = TrainingDisplay.Run(context, "pretrain", (log, progress) => Pretrainer.Train(request, log, progress, context.CancellationToken));
        if (outcome.Interrupted)
        {
            context.Error.WriteLine($"interrupted at step {outcome.Steps}; checkpoint saved in {request.Out}. Continue with the same command and --resume.");
            return 130;
        }

        context.Output.WriteLine(Format.Invariant($"model written to {request.Out} ({outcome.Steps} steps, {outcome.Tokens} tokens, validation perplexity {perplexity:0.00})"));
        return 0;
    }
}
