using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Modeling;

public sealed class InitializationTests
{
    [Fact]
    public void InitializeWeights_DrawsTruncatedNormal002_DeterministicPerSeed()
    {
        var config = ModelConfig.Load(TestPaths.Fixture("olmo2-tiny"));
        using var a = new Olmo2ForCausalLM(config, CPU, ScalarType.Float32);
        using var b = new Olmo2ForCausalLM(config, CPU, ScalarType.Float32);
        using var c = new Olmo2ForCausalLM(config, CPU, ScalarType.Float32);
        a.InitializeWeights(1);
        b.InitializeWeights(1);
        c.InitializeWeights(2);

        var embedding = a.Model.EmbedTokens.Weight;
        Assert.InRange(embedding.std().item<float>(), 0.0192, 0.0202); // a normal truncated at 3 sigma has std 0.986 * sigma
        Assert.InRange(embedding.mean().item<float>(), -0.001, 0.001);
        Assert.True(embedding.abs().max().item<float>() <= 0.06f);
        Assert.True(a.Model.Norm.Weight.eq(1).all().item<bool>());
        Assert.True(a.Model.EmbedTokens.Weight.eq(b.Model.EmbedTokens.Weight).all().item<bool>());
        Assert.False(a.Model.EmbedTokens.Weight.eq(c.Model.EmbedTokens.Weight).all().item<bool>());
    }
}
