using System.CommandLine;
using FlexOlmo.Composition;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Native;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo init-model --preset NAME|--config FILE --out DIR [--dtype] [--seed] [--shard-size]</c>: a random model.</summary>
internal static class InitModelCommand
{
    private static readonly Option<string?> Preset = new("--preset") { Description = $"A named shape: {string.Join(", ", ModelPresets.Names)}." };
    private static readonly Option<string?> Config = new("--config") { Description = "A config.json (olmo2 or flex_olmo) instead of a preset." };
    private static readonly Option<string> Out = new("--out") { Description = "The model folder to create.", Required = true };
    private static readonly Option<string> DType = new("--dtype") { Description = "float32 or bfloat16.", DefaultValueFactory = _ => "bfloat16" };
    private static readonly Option<long> Seed = new("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 0 };
    private static readonly Option<string> Shard = new("--shard-size") { Description = "Largest safetensors shard (Hugging Face's default).", DefaultValueFactory = _ => "5GB" };

    public static Command Create()
    {
        var command = new Command("init-model", "Write a randomly initialised model (N(0, 0.02) truncated at 3 sigma, norms 1) as a Hugging Face folder, one tensor at a time.")
        {
            Preset, Config, Out, DType, Seed, Shard,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: true, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var (config, _) = ModelPresets.Resolve(context.Get(Preset), context.Get(Config));
        var dtype = TorchRuntime.ResolveDType(context.Get(DType));
        var shardBytes = ShardSize.Parse(context.Get(Shard), "--shard-size");
        var parameters = RandomCheckpoint.Write(config, context.Get(Out), dtype, context.Get(Seed), shardBytes);
        context.Output.WriteLine(Format.Invariant($"{config.ModelType} model with {parameters / 1e6:0.0}M parameters ({TorchRuntime.Name(dtype)}) written to {context.Get(Out)}"));
        return 0;
    }
}
