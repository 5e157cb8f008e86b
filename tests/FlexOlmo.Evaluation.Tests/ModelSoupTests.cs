using FlexOlmo.Composition.Merging;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Evaluation.Tests;

[Collection(EvaluationCollection.Name)]
public sealed class ModelSoupTests(EvaluationFixture fixture)
{
    [Fact]
    public void Merge_AllWeightOnPublic_IsExactlyTheAnchor()
    {
        using var temp = new TempDirectory("soup-public");
        var soup = ModelSoup.Merge(new SoupRequest { Model = fixture.Composed, Weights = new Dictionary<string, double> { ["public"] = 2 }, Out = temp.File("soup") });

        Assert.Equal(1.0, soup.Weights["public"]);
        Assert.Equal(0.0, soup.Weights["counting"]);
        using var dense = SafetensorsCheckpoint.Open(soup.Folder);
        using var flex = SafetensorsCheckpoint.Open(fixture.Composed);
        Assert.Null(PublicPart.FirstDifference(dense, flex, ModelConfig.Load(fixture.Composed)));
        Assert.False(ModelConfig.Load(soup.Folder).IsMoe);
    }

    [Fact]
    public void Merge_Uniform_AveragesEveryExpertsFfnAndKeepsTheRest()
    {
        using var temp = new TempDirectory("soup-uniform");
        var soup = ModelSoup.Merge(new SoupRequest { Model = fixture.Composed, Out = temp.File("soup") });

        Assert.All(soup.Weights.Values, w => Assert.Equal(1.0 / 3, w, 12));
        var config = ModelConfig.Load(fixture.Composed);
        using var dense = SafetensorsCheckpoint.Open(soup.Folder);
        using var flex = SafetensorsCheckpoint.Open(fixture.Composed);
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (var projection in TensorNames.FfnProjections)
            {
                using var scope = NewDisposeScope();
                var experts = Enumerable.Range(0, config.NumExperts).Select(e =>
                {
                    var slice = ExpertTensors.Find(flex, config.NumExperts, layer, e, projection)!;
                    return TensorBytes.Read(slice.File, slice.Info, slice.ByteOffset, slice.Shape).to(ScalarType.Float32);
                }).ToList();
                var (file, info) = dense.Locate(TensorNames.DenseMlp(layer, projection));
                var merged = TensorBytes.Read(file, info, 0, info.Shape).to(ScalarType.Float32);
                var expected = stack(experts).mean([0L]);
                Assert.True(merged.allclose(expected, rtol: 1e-5, atol: 1e-7), $"layer {layer} {projection}");
                Assert.False(merged.eq(experts[0]).all().item<bool>(), $"layer {layer} {projection}: the soup should differ from the public FFN");
            }
        }

        var report = fixture.Evaluate(soup.Folder);
        Assert.All(report.Domains, d => Assert.True(double.IsFinite(report["anchor", d])));
    }

    [Fact]
    public void Merge_BadWeightsOrADenseModel_AreRefusedByName()
    {
        using var temp = new TempDirectory("soup-bad");
        Assert.Contains("no expert of that name", Assert.Throws<SoupException>(() => ModelSoup.Merge(new SoupRequest { Model = fixture.Composed, Weights = new Dictionary<string, double> { ["law"] = 1 }, Out = temp.File("a") })).Message, StringComparison.Ordinal);
        Assert.Contains("zero or more", Assert.Throws<SoupException>(() => ModelSoup.Merge(new SoupRequest { Model = fixture.Composed, Weights = new Dictionary<string, double> { ["counting"] = -1 }, Out = temp.File("b") })).Message, StringComparison.Ordinal);
        Assert.Contains("above zero", Assert.Throws<SoupException>(() => ModelSoup.Merge(new SoupRequest { Model = fixture.Composed, Weights = new Dictionary<string, double> { ["counting"] = 0 }, Out = temp.File("c") })).Message, StringComparison.Ordinal);
        Assert.Contains("dense model", Assert.Throws<SoupException>(() => ModelSoup.Merge(new SoupRequest { Model = fixture.Training.Anchor.ModelFolder, Out = temp.File("d") })).Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("a")));
    }
}
