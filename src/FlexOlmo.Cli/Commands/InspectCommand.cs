using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Core.Checkpoints;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo inspect DIR [--json]</c>: architecture, parameter counts, experts, dtypes and shards.</summary>
internal static class InspectCommand
{
    private static readonly Argument<string> Path = new("PATH") { Description = "A model folder (config.json + safetensors)." };
    private static readonly Option<bool> Json = CommonOptions.Json();

    public static Command Create()
    {
        var command = new Command("inspect", "Describe a model folder without loading its weights: architecture, parameters, experts, dtypes, shards.")
        {
            Path,
            Json,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var summary = CheckpointSummary.Read(context.Get(Path));
        var config = summary.Config;
        if (context.Get(Json))
        {
            var json = new Dictionary<string, object?>
            {
                ["kind"] = "model",
                ["path"] = summary.Folder,
                ["model_type"] = config.ModelType,
                ["num_hidden_layers"] = config.NumHiddenLayers,
                ["hidden_size"] = config.HiddenSize,
                ["intermediate_size"] = config.IntermediateSize,
                ["num_attention_heads"] = config.NumAttentionHeads,
                ["num_key_value_heads"] = config.NumKeyValueHeads,
                ["head_dim"] = config.HeadDim,
                ["vocab_size"] = config.VocabSize,
                ["num_experts"] = config.IsMoe ? config.NumExperts : null,
                ["num_experts_per_tok"] = config.IsMoe ? config.NumExpertsPerTok : null,
                ["norm_topk_prob"] = config.IsMoe ? config.NormTopkProb : null,
                ["parameters"] = new { total = summary.TotalParameters, active_per_token = summary.ActiveParametersPerToken, embedding = summary.EmbeddingParameters },
                ["dtypes"] = summary.TensorsByDType,
                ["shards"] = summary.Shards.Select(s => new { file = s.File, bytes = s.Bytes }).ToArray(),
            };
            context.Output.WriteLine(JsonSerializer.Serialize(json, Format.Json));
            return 0;
        }

        var output = context.Output;
        output.WriteLine($"model       {config.ModelType} ({(config.IsMoe ? "FlexOlmoForCausalLM" : "Olmo2ForCausalLM")})  {summary.Folder}");
        output.WriteLine(Format.Invariant($"shape       {config.NumHiddenLayers} layers, hidden {config.HiddenSize}, {config.NumAttentionHeads} heads ({config.NumKeyValueHeads} kv, head dim {config.HeadDim}), intermediate {config.IntermediateSize}{(config.IsMoe ? " per expert" : string.Empty)}, vocab {config.VocabSize}"));
        if (config.IsMoe)
        {
            output.WriteLine(Format.Invariant($"experts     {config.NumExperts} (0 = public), top-{config.NumExpertsPerTok} per token, norm_topk_prob {config.NormTopkProb.ToString().ToLowerInvariant()}"));
        }

        output.WriteLine($"parameters  {Format.Count(summary.TotalParameters)} total, {Format.Count(summary.ActiveParametersPerToken)} active per token, {Format.Count(summary.EmbeddingParameters)} in embeddings");
        output.WriteLine($"dtypes      {string.Join(", ", summary.TensorsByDType.Select(d => $"{d.Key} x{d.Value}"))}");
        foreach (var (file, bytes) in summary.Shards)
        {
            output.WriteLine($"shard       {file} ({Format.Bytes(bytes)})");
        }

        return 0;
    }
}
