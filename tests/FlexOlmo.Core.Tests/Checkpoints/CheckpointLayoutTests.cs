using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tests.Modeling;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Checkpoints;

public sealed class CheckpointLayoutTests
{
    [Theory]
    [InlineData("olmo2-tiny")]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public void MetaModel_HasTheFixtureTensorNamesAndShapes_OnDisk(string fixture)
    {
        var reference = HfReference.Load(fixture);
        var config = ModelConfig.Load(reference.Folder);
        using var model = new Olmo2ForCausalLM(config, META, ScalarType.Float32);

        var names = model.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.shape);
        Assert.Equal(reference.DiskTensors.Keys.Order(StringComparer.Ordinal), names.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in reference.DiskTensors)
        {
            Assert.Equal(shape, names[name]);
        }
    }

    [Fact]
    public void FusedLayout_LoadsToTheSameLogits_AsPerExpertLayout()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var temp = new TempDirectory("fused");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        CheckpointSaver.SaveFused(model, temp.Path);
        using (var checkpoint = SafetensorsCheckpoint.Open(temp.Path))
        {
            Assert.Contains("model.layers.0.mlp.experts.gate_up_proj", checkpoint.Names);
            Assert.DoesNotContain("model.layers.0.mlp.experts.0.gate_proj.weight", checkpoint.Names);
            Assert.Equal([4L, 256, 64], checkpoint.Locate("model.layers.0.mlp.experts.gate_up_proj").Info.Shape);
        }

        using var fused = CheckpointLoader.Load(temp.Path, CPU, ScalarType.Float32);
        using var logits = GoldenLogitsTests.Forward(fused, reference.InputIds, null);
        Assert.True(GoldenLogitsTests.MaxAbsDifference(logits, reference.Logits) < 1e-4f);
    }

    [Fact]
    public void Save_RoundTripsBitExactly_InShardsWithAnIndex()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var temp = new TempDirectory("shards");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        CheckpointSaver.Save(model, temp.Path, shardBytes: 300_000);

        Assert.True(File.Exists(Path.Combine(temp.Path, SafetensorsCheckpoint.IndexFileName)));
        Assert.True(Directory.GetFiles(temp.Path, "model-*-of-*.safetensors").Length >= 3);
        using var reloaded = CheckpointLoader.Load(temp.Path, CPU, ScalarType.Float32);
        foreach (var ((name, a), (_, b)) in model.NamedParameters().Zip(reloaded.NamedParameters()))
        {
            Assert.True(a.eq(b).all().item<bool>(), $"{name} changed in the round trip");
        }
    }

    [Fact]
    public void Load_NamesEveryMissingAndUnexpectedTensor_WhenConfigDoesNotFit()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var temp = new TempDirectory("mismatch");
        foreach (var file in Directory.GetFiles(reference.Folder))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        var config = File.ReadAllText(Path.Combine(temp.Path, "config.json")).Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(temp.Path, "config.json"), config);

        var error = Assert.Throws<CheckpointException>(() => CheckpointLoader.Load(temp.Path, CPU, ScalarType.Float32));
        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.layers.2.self_attn.q_proj.weight", error.Message, StringComparison.Ordinal);
        Assert.Contains(temp.Path, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ReportsUnexpectedTensors_WhenCheckpointHasExtraExperts()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var temp = new TempDirectory("extra");
        foreach (var file in Directory.GetFiles(reference.Folder))
        {
            File.Copy(file, Path.Combine(temp.Path, Path.GetFileName(file)));
        }

        var config = File.ReadAllText(Path.Combine(temp.Path, "config.json")).Replace("\"num_experts\": 4", "\"num_experts\": 3", StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(temp.Path, "config.json"), config);

        var error = Assert.Throws<CheckpointException>(() => CheckpointLoader.Load(temp.Path, CPU, ScalarType.Float32));
        Assert.Contains("unexpected", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.layers.0.mlp.experts.3.gate_proj.weight", error.Message, StringComparison.Ordinal);
        Assert.Contains("wrong shape", error.Message, StringComparison.Ordinal);
        Assert.Contains("model.layers.0.mlp.gate.weight", error.Message, StringComparison.Ordinal);
    }
}
