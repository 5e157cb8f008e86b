using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.Experts;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Tests;

/// <summary>The paper's ablations of expert training (train-expert --ablation), as the study runs them.</summary>
[Collection(TrainingCollection.Name)]
public sealed class ExpertAblationTests(TrainingFixture fixture)
{
    [Fact]
    public void TrainExpert_NoBias_LeavesEveryBiasAtZeroAndRecordsTheAblation()
    {
        using var temp = new TempDirectory("no-bias");
        var result = ExpertTrainer.Train(Request(temp.Sub("x"), "no-bias"), null, null, CancellationToken.None);

        var manifest = result.Package!.Manifest.Value;
        Assert.Equal("no bias", manifest.Training!.Ablation);
        foreach (var (layer, values) in Read(result.Package.WeightsPath, ExpertTensorNames.RouterBias))
        {
            Assert.True(values.All(v => v == 0f), $"layer {layer}: b_i moved to {values[0]} although the bias was not trained");
        }
    }

    [Fact]
    public void TrainExpert_NoCoordination_KeepsTheDomainEmbeddingAndTrainsTheFfn()
    {
        using var temp = new TempDirectory("no-coordination");
        var folder = temp.Sub("x");
        var result = ExpertTrainer.Train(Request(folder, "no-coordination"), null, null, CancellationToken.None);

        Assert.Contains("uncoordinated", result.Package!.Manifest.Value.Training!.Ablation, StringComparison.Ordinal);
        var (initial, _) = RouterEmbeddingFile.Read(Path.Combine(folder, "router_embedding.init.safetensors"));
        var config = ModelConfig.Load(fixture.Anchor.ModelFolder);
        foreach (var (layer, row) in Read(result.Package.WeightsPath, ExpertTensorNames.RouterEmbedding))
        {
            Assert.Equal(initial, row); // r_i is not trained without coordination
        }

        using var weights = SafetensorsCheckpoint.Open(result.Package.WeightsPath);
        using var anchor = SafetensorsCheckpoint.Open(fixture.Anchor.ModelFolder);
        var (file, info) = weights.Locate(ExpertTensorNames.Ffn(0, "down_proj"));
        var (anchorFile, anchorInfo) = anchor.Locate(TensorNames.DenseMlp(0, "down_proj"));
        using var trained = TensorBytes.Read(file, info, 0, info.Shape);
        using var original = TensorBytes.Read(anchorFile, anchorInfo, 0, anchorInfo.Shape);
        Assert.False(trained.eq(original).all().item<bool>(), "the FFN should have been trained");
        Assert.NotNull(result.Validation);
        Assert.Equal(config.NumHiddenLayers, Read(result.Package.WeightsPath, ExpertTensorNames.RouterBias).Count);
    }

    [Fact]
    public void ExpertTrainingTask_NoCoordination_SwitchesThePublicExpertOffUntilTrainingEnds()
    {
        var config = ModelConfig.Load(fixture.Anchor.ModelFolder);
        using var anchorWeights = SafetensorsCheckpoint.Open(fixture.Anchor.ModelFolder);
        var (rPub, _) = RouterEmbeddingFile.Read(fixture.Anchor.RouterEmbeddingPath);
        using var model = Data.ExpertModel.Build(config, anchorWeights, rPub, rPub, CPU, ScalarType.Float32);
        var task = new ExpertTrainingTask(model, TrainingFixture.SmallSettings(1), ExpertAblation.Named["no-coordination"]);
        var moe = model.Model.Layers[0].Moe!;
        using (no_grad())
        {
            moe.Experts[Data.ExpertModel.OwnerExpert].DownProj.Weight.zero_(); // the owner's FFN now outputs 0
        }

        using var x = randn(1, 5, config.HiddenSize);
        using (var off = moe.Forward(x, null, null))
        {
            Assert.Equal(0f, off.abs().max().item<float>()); // the public expert's weight is exactly 0
        }

        Assert.DoesNotContain(task.Trainable, p => p.Name.Contains("router", StringComparison.Ordinal));
        task.FinishTraining();
        using var on = moe.Forward(x, null, null);
        Assert.True(on.abs().max().item<float>() > 0, "after training the public expert is back in the 2-expert model");
    }

    [Fact]
    public void RandomRow_HasThePublicRowsMeanNormAndDependsOnlyOnTheSeed()
    {
        float[][] rows = [[3, 4, 0, 0], [0, 0, 6, 8]]; // norms 5 and 10
        var a = ExpertTrainer.RandomRow(rows, seed: 1);
        var b = ExpertTrainer.RandomRow(rows, seed: 1);
        var c = ExpertTrainer.RandomRow(rows, seed: 2);

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(7.5, Math.Sqrt(a.Sum(v => (double)v * v)), 4);
    }

    [Fact]
    public void TrainExpert_NoInit_StartsFromARandomRow()
    {
        using var temp = new TempDirectory("no-init");
        var result = ExpertTrainer.Train(Request(temp.Sub("x"), "no-init"), null, null, CancellationToken.None);

        var manifest = result.Package!.Manifest.Value;
        Assert.Equal("random", manifest.RouterEmbedding.Method);
        Assert.Contains("random router init", manifest.Training!.Ablation, StringComparison.Ordinal);
        Assert.Contains("no bias", manifest.Training.Ablation, StringComparison.Ordinal);
    }

    private ExpertTrainingRequest Request(string outFolder, string ablation) => new()
    {
        Anchor = fixture.AnchorFolder,
        Data = [fixture.CountingData],
        Name = "ablated",
        Out = outFolder,
        Owner = "test owner",
        Samples = 20,
        Settings = TrainingFixture.SmallSettings(4),
        TokenCache = fixture.TokenCache,
        Ablation = ExpertAblation.Named[ablation],
    };

    private static List<(int Layer, float[] Values)> Read(string weightsPath, Func<int, string> name)
    {
        using var weights = SafetensorsCheckpoint.Open(weightsPath);
        var rows = new List<(int, float[])>();
        for (var layer = 0; weights.Contains(name(layer)); layer++)
        {
            var (file, info) = weights.Locate(name(layer));
            using var values = TensorBytes.Read(file, info, 0, info.Shape).to(ScalarType.Float32);
            rows.Add((layer, values.data<float>().ToArray()));
        }

        return rows;
    }
}
