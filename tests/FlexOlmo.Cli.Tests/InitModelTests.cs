using FlexOlmo.Cli.Demo;
using FlexOlmo.Core.Configuration;

namespace FlexOlmo.Cli.Tests;

public sealed class InitModelTests
{
    [Fact]
    public async Task InitModel_APreset_WritesAModelThatGenerates()
    {
        using var folder = new TempDirectory("cli-init-model");
        var model = Path.Combine(folder.Path, "random");

        var run = await CliRun.RunAsync("init-model", "--preset", "demo", "--dtype", "bfloat16", "--seed", "3", "--out", model);
        var generated = await CliRun.RunAsync("generate", "--model", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "3");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("olmo2 model with", run.Output, StringComparison.Ordinal);
        Assert.Equal("bfloat16", ModelConfig.Load(model).StorageDType);
        Assert.True(generated.ExitCode == 0, generated.ToString());
    }

    [Theory]
    [InlineData(new[] { "init-model", "--out", "@out" }, "exactly one of --preset NAME and --config FILE")]
    [InlineData(new[] { "init-model", "--preset", "demo", "--config", "@config", "--out", "@out" }, "exactly one of --preset NAME and --config FILE")]
    [InlineData(new[] { "init-model", "--preset", "olmo9", "--out", "@out" }, "the presets are olmo2-1b, olmo2-7b, flexolmo-7x7b, demo")]
    [InlineData(new[] { "init-model", "--config", "@huge", "--out", "@out" }, "free; nothing was written")]
    public async Task InitModel_BadRequests_EndWithOneLineNamingTheProblem_AndWriteNothing(string[] args, string problem)
    {
        using var folder = new TempDirectory("cli-init-model-bad");
        var huge = ModelPresets.Get("olmo2-7b") with { HiddenSize = 1 << 16, IntermediateSize = 1 << 19, NumHiddenLayers = 1024, NumAttentionHeads = 1024, NumKeyValueHeads = 1024, HeadDim = 64 }; // ~200 TB
        huge.Save(folder.Sub("huge"));
        ModelPresets.Get("demo").Save(folder.Sub("config"));
        var resolved = args.Select(a => a switch
        {
            "@out" => Path.Combine(folder.Path, "out"),
            "@config" => Path.Combine(folder.Path, "config"),
            "@huge" => Path.Combine(folder.Path, "huge"),
            _ => a,
        }).ToArray();

        var run = await CliRun.RunAsync(resolved);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains(problem, run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(folder.Path, "out")));
    }

    [Fact]
    public void DemoPreset_IsTheDemosAnchorShape()
    {
        var demo = ModelConfig.FromJson(DemoPlan.Default.AnchorConfig(), "demo plan");
        var preset = ModelPresets.Get("demo");

        Assert.Equal(
            (demo.VocabSize, demo.HiddenSize, demo.IntermediateSize, demo.NumHiddenLayers, demo.NumAttentionHeads, demo.MaxPositionEmbeddings, demo.RopeTheta, demo.PadTokenId),
            (preset.VocabSize, preset.HiddenSize, preset.IntermediateSize, preset.NumHiddenLayers, preset.NumAttentionHeads, preset.MaxPositionEmbeddings, preset.RopeTheta, preset.PadTokenId));
        Assert.Equal(demo.EosTokenIds, preset.EosTokenIds);
    }
}
