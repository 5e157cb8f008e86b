using System.CommandLine;
using System.Text.Json;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Packages;

namespace FlexOlmo.Cli.Commands;

/// <summary><c>flexolmo inspect DIR [--json]</c>: architecture, parameter counts, experts, dtypes and shards.</summary>
internal static class InspectCommand
{
    private static readonly Argument<string> Path = new("PATH") { Description = "A model folder, an anchor folder or an expert package." };
    private static readonly Option<bool> Json = CommonOptions.Json();

    public static Command Create()
    {
        var command = new Command("inspect", "Describe a model folder, anchor or expert package without loading weights: architecture, parameters, experts, dtypes, shards, provenance.")
        {
            Path,
            Json,
        };
        command.SetAction((parseResult, ct) => CommandRunner.Run(parseResult, needsTorch: false, Run, ct));
        return command;
    }

    private static int Run(CommandContext context)
    {
        var path = context.Get(Path);
        if (ExpertPackage.IsPackage(path))
        {
            return Expert(context, ExpertPackage.Open(path));
        }

        if (AnchorPackage.IsPackage(path))
        {
            return Anchor(context, AnchorPackage.Open(path));
        }

        var summary = CheckpointSummary.Read(path);
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
                ["experts"] = ComposedSidecar.TryLoad(path)?.Experts,
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

        if (ComposedSidecar.TryLoad(path) is { } sidecar)
        {
            output.WriteLine($"composed    {sidecar.Name} from anchor {sidecar.AnchorName} ({sidecar.AnchorFingerprint[..19]}...){(sidecar.RouterTuning is { } t ? "; " + t : string.Empty)}");
            foreach (var e in sidecar.Experts)
            {
                output.WriteLine($"  expert {e.Index}  {e.Name}{(e.Version is null ? string.Empty : "@" + e.Version)}  owner {e.Owner}, licence {e.License}{(e.SignedBy is { } s ? $", signed by {s[..19]}..." : string.Empty)}");
            }
        }

        output.WriteLine($"parameters  {Format.Count(summary.TotalParameters)} total, {Format.Count(summary.ActiveParametersPerToken)} active per token, {Format.Count(summary.EmbeddingParameters)} in embeddings");
        output.WriteLine($"dtypes      {string.Join(", ", summary.TensorsByDType.Select(d => $"{d.Key} x{d.Value}"))}");
        foreach (var (file, bytes) in summary.Shards)
        {
            output.WriteLine($"shard       {file} ({Format.Bytes(bytes)})");
        }

        return 0;
    }

    private static int Expert(CommandContext context, ExpertPackage package)
    {
        if (context.Get(Json))
        {
            context.Output.WriteLine(package.Manifest.Json.ToJsonString(Format.Json));
            return 0;
        }

        var m = package.Manifest.Value;
        var output = context.Output;
        output.WriteLine($"expert      {m.Reference}  {package.Folder}");
        output.WriteLine($"owner       {m.Owner}  (licence {m.License})");
        if (m.Description is not null)
        {
            output.WriteLine($"about       {m.Description}");
        }

        output.WriteLine($"anchor      {m.Anchor.Name} {m.Anchor.Fingerprint}");
        output.WriteLine($"shape       {m.Architecture.NumHiddenLayers} layers, hidden {m.Architecture.HiddenSize}, intermediate {m.Architecture.IntermediateSize}, vocab {m.Architecture.VocabSize}");
        output.WriteLine($"router      {Describe(m.RouterEmbedding)}");
        if (m.Origin is { } origin)
        {
            output.WriteLine($"origin      {origin.Kind} from {origin.Source ?? "a checkpoint"} (expert {origin.SourceExpert}; config {origin.SourceConfigSha256[..19]}, {(origin.SourceTensorsSha256 is { } tensors ? $"tensors {tensors[..19]}" : "public part = the anchor")}; router bias: {origin.RouterBias})");
        }

        if (m.Training is { } t)
        {
            output.WriteLine(Format.Invariant($"training    {t.Steps} steps, {t.Tokens} tokens, seq {t.SeqLen}, lr {t.Lr}, {t.Dtype} on {t.Device}"));
        }

        if (m.Training?.Validation is { } v)
        {
            output.WriteLine(Format.Invariant($"validation perplexity {v.AnchorPerplexity:0.00} (anchor) -> {v.ExpertPerplexity:0.00} (anchor + expert) on {v.Tokens} tokens"));
        }

        foreach (var file in m.Files)
        {
            output.WriteLine($"file        {file.Path} ({Format.Bytes(file.Size)}) {file.Sha256}");
        }

        output.WriteLine($"signature   {package.Manifest.SignedBy ?? "unsigned"}");
        return 0;
    }

    private static int Anchor(CommandContext context, AnchorPackage anchor)
    {
        if (context.Get(Json))
        {
            context.Output.WriteLine(anchor.Manifest.Json.ToJsonString(Format.Json));
            return 0;
        }

        var m = anchor.Manifest.Value;
        var output = context.Output;
        output.WriteLine($"anchor      {m.Name}  {anchor.Folder}");
        output.WriteLine($"fingerprint {m.Fingerprint}");
        output.WriteLine($"model       {anchor.ModelFolder} ({m.Model.Architecture.ModelType}, {m.Model.Architecture.NumHiddenLayers} layers, hidden {m.Model.Architecture.HiddenSize}, vocab {m.Model.Architecture.VocabSize})");
        output.WriteLine($"r_pub       {Describe(m.RouterEmbedding.Provenance)}");
        output.WriteLine($"files       {m.Files.Count} ({Format.Bytes(m.Files.Sum(f => f.Size))})");
        return 0;
    }

    private static string Describe(RouterEmbeddingProvenance p) =>
        $"{p.Method}, width {p.Width}" + (p.Samples is { } n ? $", {n} documents" : string.Empty) + (p.Source is { } s ? $", from {s}" : string.Empty)
        + (p.Projection is { } j ? $", projected from {j.FromWidth} (orthogonal, seed {j.Seed})" : string.Empty);
}
