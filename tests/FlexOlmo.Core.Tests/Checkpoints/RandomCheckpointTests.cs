using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Checkpoints;

public sealed class RandomCheckpointTests
{
    [Fact]
    public void Write_GivesTheWeightsOfInitializeWeights_ForTheSameSeed_AcrossShards()
    {
        using var temp = new TempDirectory("random-model");
        var config = ModelPresets.Get("demo");
        var folder = temp.Sub("written");
        Directory.Delete(folder);

        var parameters = RandomCheckpoint.Write(config, folder, ScalarType.Float32, seed: 11, shardBytes: 2_000_000);

        Assert.True(File.Exists(Path.Combine(folder, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(folder, "model-*-of-*.safetensors").Length > 1);
        using var written = CheckpointLoader.Load(folder, CPU, ScalarType.Float32);
        using var expected = new Olmo2ForCausalLM(config, CPU, ScalarType.Float32);
        expected.InitializeWeights(11);
        var pairs = written.NamedParameters().Zip(expected.NamedParameters()).ToList();
        Assert.Equal(parameters, pairs.Sum(p => p.First.Parameter.numel()));
        Assert.All(pairs, p =>
        {
            Assert.Equal(p.Second.Name, p.First.Name);
            Assert.True(p.First.Parameter.equal(p.Second.Parameter).all().item<bool>(), p.First.Name);
        });
        Assert.Equal(0.02, written.LmHeadWeight.std().item<float>(), 2); // N(0, 0.02), truncated at 3 sigma
    }

    [Fact]
    public void Write_IntoAFolderThatHoldsFiles_IsRefused_AndNothingChanges()
    {
        using var temp = new TempDirectory("random-model-busy");
        var folder = temp.Sub("busy");
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "mine");

        var error = Assert.Throws<CheckpointException>(() => RandomCheckpoint.Write(ModelPresets.Get("demo"), folder, ScalarType.Float32, seed: 1));

        Assert.Contains("not empty", error.Message, StringComparison.Ordinal);
        Assert.Equal(["notes.txt"], Directory.GetFiles(folder).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("olmo2-1b", 1_484_916_736L)] // OLMo-2-0425-1B's parameter count
    [InlineData("olmo2-7b", 7_298_617_344L)] // OLMo-2 7B / Flex-public-7B-1T
    public void Presets_HaveTheReleasedModelsParameterCounts(string preset, long parameters)
    {
        var config = ModelPresets.Get(preset);

        Assert.Equal(parameters * 2, RandomCheckpoint.Bytes(config, ScalarType.BFloat16));
    }

    [Fact]
    public void Presets_FlexOlmo7x7b_IsSevenExpertsFiveActive_OnTheOlmo2_7bShape()
    {
        var flex = ModelPresets.Get("flexolmo-7x7b");
        var dense = ModelPresets.Get("olmo2-7b");

        Assert.True(flex.IsMoe);
        Assert.Equal((7, 5), (flex.NumExperts, flex.NumExpertsPerTok));
        Assert.Equal((dense.HiddenSize, dense.NumHiddenLayers, dense.IntermediateSize, dense.VocabSize), (flex.HiddenSize, flex.NumHiddenLayers, flex.IntermediateSize, flex.VocabSize));
        var error = Assert.Throws<ConfigException>(() => ModelPresets.Get("olmo3"));
        Assert.Contains("olmo2-1b", error.Message, StringComparison.Ordinal);
    }
}
