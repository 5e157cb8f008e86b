using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.Experts;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Tests;

[Collection(TrainingCollection.Name)]
public sealed class ActivationCheckpointingTests(TrainingFixture fixture)
{
    [Fact]
    public void CheckpointedBackward_GivesThePlainGradients_ForEveryTrainedParameter()
    {
        using var model = BuildExpertModel();
        var settings = TrainingFixture.SmallSettings(1) with { RouterZLoss = 1e-2, LogitZLoss = 1e-3 };
        var task = new ExpertTrainingTask(model, settings);
        using var batch = Batch(model.Config, settings, 3);

        var (plainTotal, plainCrossEntropy) = LanguageModelLoss.Backward(model, batch, settings, 0.5);
        var plain = task.Trainable.Select(t => t.Parameter.grad!.detach().clone()).ToList();
        foreach (var t in task.Trainable)
        {
            t.Parameter.grad = null;
        }

        var segments = 0;
        var (total, crossEntropy) = CheckpointedBackward.Run(model, batch, settings, 0.5, () => segments++);

        Assert.Equal(model.Config.NumHiddenLayers + 1, segments); // the head, then each layer
        Assert.True(Math.Abs(plainTotal - total) <= 1e-6 * plainTotal, $"loss: plain {plainTotal}, checkpointed {total}"); // fp32 sums in another order
        Assert.True(Math.Abs(plainCrossEntropy - crossEntropy) <= 1e-6 * plainCrossEntropy, $"cross-entropy: plain {plainCrossEntropy}, checkpointed {crossEntropy}");
        foreach (var (t, expected) in task.Trainable.Zip(plain))
        {
            var actual = t.Parameter.grad ?? throw new Xunit.Sdk.XunitException($"{t.Name} got no gradient");
            var scale = expected.abs().max().item<float>();
            Assert.True(scale > 0, $"{t.Name}: the plain gradient is zero, so the comparison would prove nothing");
            var difference = (actual - expected).abs().max().item<float>();
            Assert.True(difference <= 1e-5 * scale, $"{t.Name}: checkpointed gradient differs by {difference} (scale {scale})");
        }
    }

    [Fact]
    public void TrainingLoop_WithCheckpointing_FollowsThePlainLossCurve_InBf16WithAccumulation()
    {
        var settings = TrainingFixture.SmallSettings(4) with { MicroBatch = 2 };
        var plain = Losses(settings with { ActivationCheckpointing = false }, ScalarType.BFloat16, out var plainMemory);
        var checkpointed = Losses(settings with { ActivationCheckpointing = true }, ScalarType.BFloat16, out var checkpointedMemory);

        Assert.False(plainMemory.Checkpointing);
        Assert.True(checkpointedMemory.Checkpointing);
        Assert.Equal(4, checkpointed.Count);
        for (var i = 0; i < plain.Count; i++)
        {
            Assert.True(Math.Abs(plain[i] - checkpointed[i]) <= 0.02 * plain[i], $"step {i + 1}: plain {plain[i]}, checkpointed {checkpointed[i]}");
        }

        Assert.True(checkpointed[^1] < checkpointed[0], $"the loss should fall: {string.Join(", ", checkpointed)}");
    }

    [Fact]
    public void MemoryPlan_ChoosesCheckpointing_ForAOneBillionExpertOn24GiB_AndNotForTheDemo()
    {
        var settings = new TrainingSettings { SeqLen = 2048, BatchTokens = 2048, MicroBatch = 1 };
        var oneB = ExpertModel.ConfigFor(ModelPresets.Get("olmo2-1b"));
        var ffn = 3L * oneB.HiddenSize * oneB.IntermediateSize * oneB.NumHiddenLayers; // the owner's FFN, 805M
        var modelParameters = 1_484_916_736L + ffn; // OLMo-2 1B plus the owner's copy of the FFN
        var plan = TrainingMemory.Plan(oneB, modelParameters, ffn, ScalarType.BFloat16, settings, 24L << 30);

        Assert.True(plan.Checkpointing);
        Assert.Equal(16 * ffn, plan.OptimizerBytes);
        Assert.Equal(2 * modelParameters, plan.ModelBytes);
        Assert.InRange(plan.FloorBytes, 16L << 30, 22L << 30);
        var plain = TrainingMemory.Estimate(oneB, modelParameters, ffn, ScalarType.BFloat16, settings, checkpointing: false);
        Assert.True(plain.ActivationBytes > 5 * plan.ActivationBytes, $"plain {plain.ActivationBytes} vs checkpointed {plan.ActivationBytes}");

        var demo = ExpertModel.ConfigFor(ModelPresets.Get("demo"));
        Assert.False(TrainingMemory.Plan(demo, 5_000_000, 3_000_000, ScalarType.Float32, settings with { SeqLen = 256, BatchTokens = 256 }, 24L << 30).Checkpointing);
        Assert.True(TrainingMemory.Plan(demo, 5_000_000, 3_000_000, ScalarType.Float32, new TrainingSettings { ActivationCheckpointing = true }, 24L << 30).Checkpointing);
    }

    private List<double> Losses(TrainingSettings settings, ScalarType dtype, out TrainingMemory memory)
    {
        using var model = BuildExpertModel(dtype);
        var task = new ExpertTrainingTask(model, settings);
        using var data = Dataset(model.Config);
        using var temp = new TempDirectory("checkpointing");
        var split = new InstanceSplit(data.InstanceCount(settings.SeqLen), settings.ValidationFraction, settings.Seed);
        var loop = new TrainingLoop(task, data, split, settings, settings.Steps!.Value, CPU, temp.Path);
        memory = loop.Memory;
        return [.. loop.Run(false, null, CancellationToken.None).Losses];
    }

    private Olmo2ForCausalLM BuildExpertModel(ScalarType dtype = ScalarType.Float32)
    {
        var config = ModelConfig.Load(fixture.Anchor.ModelFolder);
        using var weights = SafetensorsCheckpoint.Open(fixture.Anchor.ModelFolder);
        var (rPub, _) = RouterEmbeddingFile.Read(fixture.Anchor.RouterEmbeddingPath);
        return ExpertModel.Build(config, weights, rPub, rPub.Select(v => -v).ToArray(), CPU, dtype);
    }

    private Tensor Batch(ModelConfig config, TrainingSettings settings, int instances)
    {
        using var data = Dataset(config);
        return Batches.Make(data, Enumerable.Range(0, instances).Select(i => (long)i).ToArray(), settings.SeqLen, CPU); // [B, L+1]
    }

    private TokenDataset Dataset(ModelConfig config)
    {
        var anchorConfig = ModelConfig.Load(fixture.Anchor.ModelFolder);
        var cache = new TokenCache(fixture.TokenCache, new TextEncoding(fixture.Tokenizer, anchorConfig.EosTokenIds[0]));
        return new TokenDataset(cache.Prepare([fixture.CountingData], 2), config.VocabSize);
    }
}
