using System.CommandLine;
using FlexOlmo.Training;
using FlexOlmo.Training.RouterTuning;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo tune-router --model COMPOSED --data PATH... --out DIR</c>: train only the router rows on proxy data.</summary>
internal static class TuneRouterCommand
{
    private static readonly TrainingSettings Defaults = new() { SeqLen = 2048, BatchTokens = 65536, Lr = 2e-3, WeightDecay = 0.1, Warmup = 100 };
    private static readonly TrainingOptions Training = new(Defaults);
    private static readonly Option<string> Model = new("--model") { Description = "A composed FlexOlmo model folder.", Required = true };
    private static readonly Option<string[]> Data = new("--data") { Description = "Proxy data (public documents like each owner's domain) plus public data.", Required = true, AllowMultipleArgumentsPerToken = true };
    private static readonly Option<string> Out = new("--out") { Description = "New composed model folder.", Required = true };
    private static readonly Option<string> Device = CommonOptions.Device();
    private static readonly Option<string> DType = CommonOptions.DType();
    private static readonly Option<string?> TokenCacheFolder = CommonOptions.TokenCache();

    public static Command Create()
    {
        var command = new Command("tune-router", "Tune the router rows of a composed model on proxy data (everything else frozen, all experts active).") { Model, Data, Out, Device, DType, TokenCacheFolder };
        foreach (var option in Training.All.Where(o => o != Training.Resume))
        {
            command.Options.Add(option);
        }

        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var request = new RouterTuningRequest
        {
            Model = context.Get(Model),
            Data = context.Get(Data),
            Out = context.Get(Out),
            Settings = Training.Settings(context.ParseResult, Defaults),
            Device = context.Get(Device),
            DType = context.Get(DType),
            TokenCache = context.Get(TokenCacheFolder),
        };
        var outcome = TrainingDisplay.Run(context, "tune-router", (log, progress) => RouterTuner.Tune(request, log, progress, context.CancellationToken));
        if (outcome.Interrupted)
        {
            context.Error.WriteLine($"interrupted at step {outcome.Steps}; nothing was written.");
            return 130;
        }

        context.Output.WriteLine($"router-tuned model written to {request.Out} ({outcome.Steps} steps)");
        return 0;
    }
}
