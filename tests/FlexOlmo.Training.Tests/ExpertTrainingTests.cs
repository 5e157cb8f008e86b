using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Data;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.Experts;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Tests;

[Collection(TrainingCollection.Name)]
public sealed class ExpertTrainingTests(TrainingFixture fixture, ITestOutputHelper output)
{
    [Theory]
    [InlineData("counting")]
    [InlineData("chemistry")]
    public void TrainExpert_LowersValidationPerplexity_OnItsOwnDomainUnseenByTheAnchor(string domain)
    {
        using var temp = new TempDirectory("expert");
        var data = domain == "counting" ? fixture.CountingData : fixture.ChemistryData;
        var result = ExpertTrainer.Train(Request(temp.Sub(domain), data, domain, steps: 40), null, null, CancellationToken.None);

        var validation = result.Validation!;
        output.WriteLine($"{domain}: anchor ppl {validation.AnchorPerplexity:F2}, anchor+expert ppl {validation.ExpertPerplexity:F2}");
        Assert.True(validation.ExpertPerplexity < 0.8 * validation.AnchorPerplexity, $"expert {validation.ExpertPerplexity} vs anchor {validation.AnchorPerplexity}");
        var manifest = result.Package!.Manifest.Value;
        Assert.Equal(domain, manifest.Name);
        Assert.Equal(fixture.Anchor.Fingerprint, manifest.Anchor.Fingerprint);
        Assert.Equal("anchor-mean-hidden", manifest.RouterEmbedding.Method);
        Assert.Equal(40, manifest.Training!.Steps);
        Assert.Equal(64, manifest.Architecture.HiddenSize);
        using var weights = SafetensorsCheckpoint.Open(result.Package.WeightsPath);
        Assert.Equal(2 * 5, weights.Names.Count); // per layer: 3 FFN matrices, r_i, b_i
        Assert.True(File.Exists(Path.Combine(result.OutFolder, TrainingLoop.MetricsFile)));
    }

    [Fact]
    public void ExpertTraining_KeepsEveryFrozenTensorBitIdentical_AndChangesOnlyTheTrainableSet()
    {
        var config = ModelConfig.Load(fixture.Anchor.ModelFolder);
        using var anchorWeights = SafetensorsCheckpoint.Open(fixture.Anchor.ModelFolder);
        var (rPub, _) = RouterEmbeddingFile.Read(fixture.Anchor.RouterEmbeddingPath);
        var rOwner = rPub.Select(v => v * 0.5f).ToArray();
        using var model = ExpertModel.Build(config, anchorWeights, rPub, rOwner, CPU, ScalarType.Float32);
        using var before = new TempDirectory("before");
        var initial = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.detach().clone());
        var settings = TrainingFixture.SmallSettings(5);
        var task = new ExpertTrainingTask(model, settings);
        using var data = Dataset(fixture.CountingData, config);
        var split = new InstanceSplit(data.InstanceCount(settings.SeqLen), settings.ValidationFraction, settings.Seed);
        new TrainingLoop(task, data, split, settings, 5, CPU, before.Path).Run(false, null, CancellationToken.None);

        var trainable = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, parameter) in model.NamedParameters())
        {
            var unchanged = parameter.detach().eq(initial[name]).all().item<bool>();
            var isOwnerExpert = name.Contains(".mlp.experts.1.", StringComparison.Ordinal);
            var isRouter = name.EndsWith(".mlp.gate.weight", StringComparison.Ordinal);
            if (isOwnerExpert)
            {
                Assert.False(unchanged, $"{name} should have been trained");
            }
            else if (isRouter)
            {
                Assert.True(parameter[0].eq(initial[name][0]).all().item<bool>(), $"{name}: r_pub (row 0) must stay frozen");
                Assert.False(parameter[1].eq(initial[name][1]).all().item<bool>(), $"{name}: r_i (row 1) should have been trained");
            }
            else
            {
                Assert.True(unchanged, $"{name} is frozen but changed");
                var source = ExpertModel.AnchorName(name);
                var (file, info) = anchorWeights.Locate(source);
                using var original = TensorBytes.Read(file, info, 0, info.Shape);
                Assert.True(parameter.detach().eq(original).all().item<bool>(), $"{name} differs from the anchor's {source}");
            }
        }

        foreach (var layer in model.Model.Layers)
        {
            Assert.Equal(0f, layer.Moe!.RouterBias![0].item<float>());
        }
    }

    [Fact]
    public void Resume_After10Steps_GivesTheSameLossesAs20StraightSteps()
    {
        using var temp = new TempDirectory("resume");
        var straight = ExpertTrainer.Train(Request(temp.Sub("straight"), fixture.CountingData, "straight", steps: 20), null, null, CancellationToken.None);

        var resumedFolder = temp.Sub("resumed");
        using var stop = new CancellationTokenSource();
        var first = ExpertTrainer.Train(Request(resumedFolder, fixture.CountingData, "resumed", steps: 20), null, new StopAtStep(10, stop), stop.Token);
        Assert.True(first.Outcome.Interrupted);
        Assert.Equal(10, first.Outcome.Steps);
        Assert.Null(first.Package);
        var second = ExpertTrainer.Train(Request(resumedFolder, fixture.CountingData, "resumed", steps: 20) with { Resume = true }, null, null, CancellationToken.None);

        Assert.False(second.Outcome.Interrupted);
        Assert.Equal(straight.Outcome.Losses, second.Outcome.Losses);
        using var a = SafetensorsCheckpoint.Open(straight.Package!.WeightsPath);
        using var b = SafetensorsCheckpoint.Open(second.Package!.WeightsPath);
        foreach (var name in a.Names)
        {
            var (fa, ia) = a.Locate(name);
            var (fb, ib) = b.Locate(name);
            Assert.True(fa.Bytes(ia, 0, (int)ia.ByteLength).SequenceEqual(fb.Bytes(ib, 0, (int)ib.ByteLength)), $"{name} differs after resume");
        }
    }

    [Fact]
    public void Resume_WithOtherSettings_IsRefusedWithAClearMessage()
    {
        using var temp = new TempDirectory("resume-mismatch");
        var folder = temp.Sub("x");
        ExpertTrainer.Train(Request(folder, fixture.CountingData, "x", steps: 3), null, null, CancellationToken.None);
        var error = Assert.Throws<TrainingException>(() => ExpertTrainer.Train(Request(folder, fixture.CountingData, "x", steps: 4) with { Resume = true }, null, null, CancellationToken.None));
        Assert.Contains("other settings", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Resume_WithAnotherAblation_IsRefusedBeforeAnyWeightIsTouched()
    {
        // An ablation trains another set of parameters (no-bias leaves b_i out): resuming a method run as an ablation,
        // or the other way round, would mix two experiments in one expert.
        using var temp = new TempDirectory("resume-ablation");
        var folder = temp.Sub("x");
        using var stop = new CancellationTokenSource();
        ExpertTrainer.Train(Request(folder, fixture.CountingData, "x", steps: 6), null, new StopAtStep(3, stop), stop.Token);
        var checkpoint = Directory.GetFiles(folder, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var error = Assert.Throws<TrainingException>(() => ExpertTrainer.Train(Request(folder, fixture.CountingData, "x", steps: 6) with { Resume = true, Ablation = ExpertAblation.Named["no-bias"] }, null, null, CancellationToken.None));

        Assert.Contains("other settings", error.Message, StringComparison.Ordinal);
        Assert.Contains("ablation=no bias", error.Message, StringComparison.Ordinal);
        Assert.All(checkpoint, file => Assert.Equal(file.Value, File.ReadAllBytes(file.Key)));
        var resumed = ExpertTrainer.Train(Request(folder, fixture.CountingData, "x", steps: 6) with { Resume = true }, null, null, CancellationToken.None);
        Assert.Equal(6, resumed.Outcome.Steps); // the same run, resumed by the method, still goes on
    }

    [Fact]
    public void TrainExpert_RejectsSequencesLongerThanTheModelAllows()
    {
        using var temp = new TempDirectory("long");
        var request = Request(temp.Path, fixture.CountingData, "long", 3) with { Settings = TrainingFixture.SmallSettings(3) with { SeqLen = 256, BatchTokens = 256 } };
        var error = Assert.Throws<TrainingException>(() => ExpertTrainer.Train(request, null, null, CancellationToken.None));
        Assert.Contains("max_position_embeddings 128", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainExpert_RejectsMissingAndEmptyDataAndBadJsonLines()
    {
        using var temp = new TempDirectory("bad-data");
        var missing = Assert.Throws<DataException>(() => ExpertTrainer.Train(Request(temp.Sub("a"), temp.File("nope.jsonl"), "a", 3), null, null, CancellationToken.None));
        Assert.Contains("nope.jsonl: no such file", missing.Message, StringComparison.Ordinal);

        var empty = temp.File("empty.jsonl");
        File.WriteAllText(empty, "\n\n");
        var none = Assert.Throws<DataException>(() => ExpertTrainer.Train(Request(temp.Sub("b"), empty, "b", 3), null, null, CancellationToken.None));
        Assert.Contains("holds no text", none.Message, StringComparison.Ordinal);

        var broken = temp.File("broken.jsonl");
        File.WriteAllLines(broken, ["{\"text\": \"fine\"}", "{\"text\": unquoted}"]);
        var bad = Assert.Throws<DataException>(() => ExpertTrainer.Train(Request(temp.Sub("c"), broken, "c", 3), null, null, CancellationToken.None));
        Assert.Contains("broken.jsonl:2", bad.Message, StringComparison.Ordinal);

        var noText = temp.File("notext.jsonl");
        File.WriteAllLines(noText, ["{\"body\": \"x\"}"]);
        Assert.Contains("\"text\"", Assert.Throws<DataException>(() => ExpertTrainer.Train(Request(temp.Sub("d"), noText, "d", 3), null, null, CancellationToken.None)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainExpert_ProjectsAnExternalEmbeddingOfAnotherWidth_AndRecordsIt()
    {
        using var temp = new TempDirectory("external");
        var vector = temp.File("embedder.json");
        File.WriteAllText(vector, "[" + string.Join(",", Enumerable.Range(0, 100).Select(i => (i % 7 * 0.1).ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]");
        var result = ExpertTrainer.Train(Request(temp.Sub("e"), fixture.CountingData, "ext", 2) with { RouterEmbedding = vector }, null, null, CancellationToken.None);

        var provenance = result.Package!.Manifest.Value.RouterEmbedding;
        Assert.Equal("external", provenance.Method);
        Assert.Equal(100, provenance.Projection!.FromWidth);
        Assert.Equal(64, provenance.Width);
        Assert.StartsWith("sha256:", provenance.SourceSha256, StringComparison.Ordinal);
    }

    private ExpertTrainingRequest Request(string outFolder, string data, string name, long steps) => new()
    {
        Anchor = fixture.AnchorFolder,
        Data = [data],
        Name = name,
        Out = outFolder,
        Owner = "test owner",
        License = "Apache-2.0",
        Samples = 50,
        Settings = TrainingFixture.SmallSettings(steps),
        TokenCache = fixture.TokenCache,
    };

    private TokenDataset Dataset(string file, ModelConfig config)
    {
        var cache = new TokenCache(fixture.TokenCache, new TextEncoding(fixture.Tokenizer, config.EosTokenIds[0]));
        return new TokenDataset(cache.Prepare([file], 2), config.VocabSize);
    }
}
