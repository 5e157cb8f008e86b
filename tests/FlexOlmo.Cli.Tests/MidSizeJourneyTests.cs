using System.Text.Json.Nodes;
using FlexOlmo.Core.Configuration;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// A data owner's whole journey at the scale ladder's ~150M rung (a random anchor of the olmo2-1b family: hidden 512,
/// 12 layers, the 100,352-token vocabulary), through the real executable: init-model, prepare-anchor on public
/// tokens, train-expert, compose and generate with the owner opted out. About half a minute on two cores; the 1B rung
/// belongs to the benchmark.
/// </summary>
public sealed class MidSizeJourneyTests
{
    [Fact]
    public async Task Anchor150m_InitPrepareTrainComposeGenerate_EndToEnd()
    {
        using var folder = new TempDirectory("cli-150m");
        string At(string name) => Path.Combine(folder.Path, name);
        async Task<CliRun> Ok(params string[] args)
        {
            var run = await CliRun.RunAsync(args);
            Assert.True(run.ExitCode == 0, $"{string.Join(' ', args)}\n{run}");
            return run;
        }

        var config = ModelPresets.Get("olmo2-1b") with { HiddenSize = 512, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 8, NumKeyValueHeads = 8, HeadDim = 64 };
        config.Save(folder.Sub("config"));
        var random = new Random(150);
        foreach (var name in new[] { "public.bin", "owner.bin" })
        {
            // Headerless uint32 ids (the width the 100,352-token vocabulary needs); the owner's come from a narrower range.
            var limit = name == "owner.bin" ? 5000 : 100_000;
            File.WriteAllBytes(At(name), Enumerable.Range(0, 40_000).SelectMany(_ => BitConverter.GetBytes((uint)random.Next(limit))).ToArray());
        }

        var init = await Ok("init-model", "--config", At("config"), "--dtype", "bfloat16", "--seed", "1", "--out", At("anchor-model"));
        await Ok("prepare-anchor", "--model", At("anchor-model"), "--public-data", At("public.bin"), "--name", "public-150m", "--out", At("anchor"), "--samples", "8", "--seq-len", "64");
        await Ok("train-expert", "--anchor", At("anchor"), "--data", At("owner.bin"), "--name", "owner", "--owner", "me", "--out", At("expert"),
            "--steps", "3", "--seq-len", "128", "--batch-tokens", "256", "--samples", "8", "--val-fraction", "0.05", "--checkpoint-every", "0");
        File.WriteAllText(At("recipe.yaml"), $"name: mid-150m\nanchor: {{ source: {At("anchor")} }}\nexperts:\n  - source: {At("expert")}\n");
        await Ok("compose", "--recipe", At("recipe.yaml"), "--out", At("composed"));
        var generated = await Ok("generate", "--model", At("composed"), "--prompt-ids", "11,12,13", "--max-new-tokens", "4", "--exclude-experts", "owner", "--json");

        Assert.Contains("153", init.Output, StringComparison.Ordinal); // "... with 153.1M parameters"
        var composed = ModelConfig.Load(At("composed"));
        Assert.Equal((ModelConfig.FlexOlmo, 2, 12, 100352), (composed.ModelType, composed.NumExperts, composed.NumHiddenLayers, composed.VocabSize));
        var metrics = File.ReadAllLines(Path.Combine(At("expert"), "metrics.jsonl")).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(3, metrics.Count);
        Assert.All(metrics, m => Assert.True(double.IsFinite(m["loss"]!.GetValue<double>()), m.ToJsonString()));
        var tokens = JsonNode.Parse(generated.Output)!["token_ids"]!.AsArray();
        Assert.Equal(4, tokens.Count);
    }
}
