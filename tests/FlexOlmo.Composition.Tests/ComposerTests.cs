using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.RouterTuning;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FlexOlmo.Composition.Tests;

[Collection(CompositionCollection.Name)]
public sealed class ComposerTests(CompositionFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public async Task Composed_WithEveryExpertButThePublicOneExcluded_EqualsTheDenseAnchor()
    {
        var result = await ComposeAsync($$"""
            name: two-domains
            anchor: { source: {{fixture.Training.AnchorFolder}} }
            experts:
              - source: {{fixture.Counting.Folder}}
              - source: {{fixture.Chemistry.Folder}}
            experts_per_token: 2
            dtype: float32
            """);

        using var composed = CheckpointLoader.Load(result.Folder, CPU, ScalarType.Float32);
        using var anchor = CheckpointLoader.Load(fixture.Training.Anchor.ModelFolder, CPU, ScalarType.Float32);
        var ids = fixture.Training.Tokenizer.Encode("the cat sees a dog. one two three four five").Select(i => (long)i).ToArray();
        using var input = tensor(ids, [1, ids.Length]);
        using var noGrad = no_grad();
        using var publicOnly = ExpertMask.ToRouterBias([ExpertSet.Include(3, [0])], 3, CPU);
        using var dense = anchor.Forward(input);
        using var masked = composed.Forward(input, new ForwardOptions { ExpertBias = publicOnly });
        using var all = composed.Forward(input);

        var difference = (masked - dense).abs().max().item<float>();
        output.WriteLine($"max |composed(public only) - anchor| = {difference:E3}");
        Assert.True(difference < 1e-5f, $"max difference {difference:E3}");
        Assert.True((all - dense).abs().max().item<float>() > 1e-3f, "with the experts the logits should differ");
    }

    [Fact]
    public async Task Composed_IsAHuggingFaceFlexOlmoCheckpoint_WithSidecarAndTokenizer()
    {
        using var temp = new TempDirectory("compose");
        var result = await ComposeAsync($$"""
            name: hf-layout
            anchor: { source: {{fixture.Training.AnchorFolder}}, fingerprint: "{{fixture.Training.Anchor.Fingerprint}}" }
            experts:
              - source: {{fixture.Counting.Folder}}
              - source: {{fixture.Chemistry.Folder}}
            experts_per_token: 2
            output: { shard_size: 200KB }
            """);

        var config = ModelConfig.Load(result.Folder);
        Assert.Equal((ModelConfig.FlexOlmo, 3, 2, false), (config.ModelType, config.NumExperts, config.NumExpertsPerTok, config.NormTopkProb));
        Assert.True(File.Exists(Path.Combine(result.Folder, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(result.Folder, "generation_config.json")));
        Assert.True(File.Exists(Path.Combine(result.Folder, SafetensorsCheckpoint.IndexFileName)));
        using (var checkpoint = SafetensorsCheckpoint.Open(result.Folder))
        {
            Assert.Contains("model.layers.1.mlp.experts.2.down_proj.weight", checkpoint.Names);
            Assert.Equal([3L, 64], checkpoint.Locate("model.layers.0.mlp.gate.weight").Info.Shape);
            Assert.DoesNotContain(checkpoint.Names, n => n.EndsWith(".mlp.gate_proj.weight", StringComparison.Ordinal));
        }

        var sidecar = ComposedSidecar.TryLoad(result.Folder)!;
        Assert.Equal(["public", "counting", "chemistry"], sidecar.ExpertNames);
        Assert.Equal("counting owner", sidecar.Experts[1].Owner);
        Assert.Equal(2, sidecar.Experts[1].RouterBias!.Count);
        Assert.Equal(ExpertSet.Exclude(3, [1]), ExpertSet.Parse(null, "counting", 3, sidecar.ExpertNames));
    }

    [Fact]
    public async Task Compose_FromTheRegistry_PullsVerifiesAndHonoursTrustedKeys()
    {
        var recipe = fixture.Recipe($$"""
            name: from-registry
            registry: {{fixture.RegistryFolder}}
            anchor: { source: "anchor:tiny-anchor" }
            experts:
              - source: counting@1.0.0
            trusted_keys: [{{Path.Combine(fixture.Keys, "owner.key.pub")}}]
            """);
        var result = await Composer.ComposeAsync(Recipe.Load(recipe), Path.Combine(Path.GetDirectoryName(recipe)!, "out"), null, null, CancellationToken.None);

        Assert.Equal(["public", "counting"], result.Sidecar.ExpertNames);
        Assert.NotNull(result.Sidecar.Experts[1].SignedBy);
        Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(recipe)!, ".compose-*"));
    }

    [Fact]
    public async Task Compose_NeverLeavesAHalfWrittenOutput_WhenInterrupted()
    {
        var recipe = fixture.Recipe($$"""
            name: interrupted
            anchor: { source: {{fixture.Training.AnchorFolder}} }
            experts:
              - source: {{fixture.Counting.Folder}}
            """);
        var folder = Path.GetDirectoryName(recipe)!;
        using var cancel = new CancellationTokenSource();
        var log = new Reporter(line =>
        {
            if (line.StartsWith("writing", StringComparison.Ordinal))
            {
                cancel.Cancel();
            }
        });

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Composer.ComposeAsync(Recipe.Load(recipe), Path.Combine(folder, "out"), null, log, cancel.Token));

        Assert.False(Directory.Exists(Path.Combine(folder, "out")));
        Assert.Equal(["recipe.yaml"], Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName));
    }

    [Fact]
    public async Task TuneRouter_TrainsOnlyTheRouterRows_AndUpdatesTheSidecar()
    {
        var composed = await ComposeAsync($$"""
            name: to-tune
            anchor: { source: {{fixture.Training.AnchorFolder}} }
            experts:
              - source: {{fixture.Counting.Folder}}
              - source: {{fixture.Chemistry.Folder}}
            experts_per_token: 2
            """);
        var tuned = Path.Combine(Path.GetDirectoryName(composed.Folder)!, "tuned");
        RouterTuner.Tune(
            new RouterTuningRequest
            {
                Model = composed.Folder,
                Data = [fixture.Training.PublicData, fixture.Training.CountingData],
                Out = tuned,
                Settings = TrainingFixture.SmallSettings(5) with { Lr = 2e-3, WeightDecay = 0.1 },
                TokenCache = fixture.Training.TokenCache,
            },
            null,
            null,
            CancellationToken.None);

        using var before = SafetensorsCheckpoint.Open(composed.Folder);
        using var after = SafetensorsCheckpoint.Open(tuned);
        foreach (var name in before.Names)
        {
            var (fa, ia) = before.Locate(name);
            var (fb, ib) = after.Locate(name);
            var same = fa.Bytes(ia, 0, (int)ia.ByteLength).SequenceEqual(fb.Bytes(ib, 0, (int)ib.ByteLength));
            Assert.True(name.EndsWith(".mlp.gate.weight", StringComparison.Ordinal) ? !same : same, $"{name}: {(same ? "unchanged" : "changed")}");
        }

        Assert.Equal(2, ModelConfig.Load(tuned).NumExpertsPerTok);
        Assert.Contains("router rows tuned", ComposedSidecar.TryLoad(tuned)!.RouterTuning, StringComparison.Ordinal);
    }

    private async Task<CompositionResult> ComposeAsync(string yaml)
    {
        var recipe = fixture.Recipe(yaml);
        return await Composer.ComposeAsync(Recipe.Load(recipe), Path.Combine(Path.GetDirectoryName(recipe)!, "composed"), null, null, CancellationToken.None);
    }

    private sealed class Reporter(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
