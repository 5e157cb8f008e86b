using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Generation;

public sealed class TextGeneratorTests
{
    private static readonly SamplingOptions Greedy8 = new() { MaxNewTokens = 8 };

    [Theory]
    [InlineData("olmo2-tiny")]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public void Greedy_ReproducesTransformersGenerate_ForEachFixture(string fixture)
    {
        var reference = HfReference.Load(fixture);
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var generator = new TextGenerator(model, null);
        var prompts = reference.InputIds.Select(r => r.Take(reference.GreedyPromptLength).Select(x => (int)x).ToArray()).ToArray();

        var results = generator.Generate(prompts.Select(p => new GenerationRequest(p, Greedy8)).ToArray());

        for (var b = 0; b < prompts.Length; b++)
        {
            Assert.Equal(reference.GreedyTokens[b].Skip(reference.GreedyPromptLength).Select(x => (int)x), results[b].TokenIds);
            Assert.Equal("length", results[b].FinishReason);
        }
    }

    [Fact]
    public void Greedy_WithExpert3Excluded_ReproducesTheOptOutModel()
    {
        var full = HfReference.Load("flexolmo-tiny");
        var optout = HfReference.Load("flexolmo-tiny-optout");
        using var model = CheckpointLoader.Load(full.Folder, CPU, ScalarType.Float32);
        var prompt = full.InputIds[0].Take(8).Select(x => (int)x).ToArray();

        var result = new TextGenerator(model, null).Generate([new GenerationRequest(prompt, Greedy8, ExpertSet.Exclude(4, [3]))])[0];

        Assert.Equal(optout.GreedyTokens[0].Skip(8).Select(x => (int)x), result.TokenIds);
    }

    [Fact]
    public void Batch_OfDifferentLengthsAndMasks_GivesEachRowWhatItGivesAlone()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var generator = new TextGenerator(model, null);
        var sampling = new SamplingOptions { MaxNewTokens = 10 };
        var requests = new[]
        {
            new GenerationRequest(reference.InputIds[0].Take(12).Select(x => (int)x).ToArray(), sampling, ExpertSet.Exclude(4, [3])),
            new GenerationRequest(reference.InputIds[1].Take(5).Select(x => (int)x).ToArray(), sampling, ExpertSet.Include(4, [0, 2])),
            new GenerationRequest(reference.InputIds[1].Take(9).Select(x => (int)x).ToArray(), sampling with { MaxNewTokens = 4 }),
            new GenerationRequest(reference.InputIds[0].Take(3).Select(x => (int)x).ToArray(), sampling with { Temperature = 0.8, Seed = 7 }, ExpertSet.Include(4, [0])),
        };

        var together = generator.Generate(requests);
        var alone = requests.Select(r => generator.Generate([r])[0]).ToArray();

        for (var b = 0; b < requests.Length; b++)
        {
            Assert.Equal(alone[b].TokenIds, together[b].TokenIds);
        }

        Assert.Equal(4, together[2].TokenIds.Count);
        Assert.NotEqual(together[0].TokenIds, together[1].TokenIds);
    }

    [Fact]
    public void KvCache_StepByStepLogits_EqualTheFullForward()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var ids = tensor(reference.InputIds.SelectMany(r => r).ToArray(), [2, 16]);
        using var noGrad = no_grad();
        using var full = model.Forward(ids); // [2, 16, V]
        using var cache = model.CreateCache(2, 4); // grows while decoding
        using var prefill = model.Forward(ids.narrow(1, 0, 6), new ForwardOptions { Cache = cache });
        var maxDiff = (prefill - full.narrow(1, 0, 6)).abs().max().item<float>();
        for (var t = 6; t < 16; t++)
        {
            using var step = model.Forward(ids.narrow(1, t, 1), new ForwardOptions { Cache = cache });
            maxDiff = Math.Max(maxDiff, (step - full.narrow(1, t, 1)).abs().max().item<float>());
        }

        Assert.Equal(16, cache.Length);
        Assert.True(maxDiff < 1e-4f, $"max |cached - full| = {maxDiff:E3}");
    }

    [Fact]
    public void Sampling_IsReproducibleForASeed_AndTopK1IsGreedy()
    {
        var reference = HfReference.Load("olmo2-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var generator = new TextGenerator(model, null);
        var prompt = reference.InputIds[0].Take(4).Select(x => (int)x).ToArray();
        var hot = new SamplingOptions { MaxNewTokens = 24, Temperature = 1.5, Seed = 11, TopP = 0.95 };

        var first = generator.Generate([new GenerationRequest(prompt, hot)])[0];
        var second = generator.Generate([new GenerationRequest(prompt, hot)])[0];
        var otherSeed = generator.Generate([new GenerationRequest(prompt, hot with { Seed = 12 })])[0];
        var greedy = generator.Generate([new GenerationRequest(prompt, new SamplingOptions { MaxNewTokens = 24 })])[0];
        var topK1 = generator.Generate([new GenerationRequest(prompt, hot with { TopK = 1 })])[0];

        Assert.Equal(first.TokenIds, second.TokenIds);
        Assert.NotEqual(first.TokenIds, otherSeed.TokenIds);
        Assert.Equal(greedy.TokenIds, topK1.TokenIds);
    }

    [Fact]
    public void Eos_StopsTheRow_AndKeepsTheEosId()
    {
        var reference = HfReference.Load("olmo2-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var generator = new TextGenerator(model, null);
        var prompt = reference.InputIds[0].Take(8).Select(x => (int)x).ToArray();
        var expected = reference.GreedyTokens[0].Skip(8).Select(x => (int)x).ToArray();

        var result = generator.Generate([new GenerationRequest(prompt, Greedy8 with { EosTokenIds = [expected[2]] })])[0];

        Assert.Equal(expected.Take(3), result.TokenIds);
        Assert.Equal("stop", result.FinishReason);
    }

    [Fact]
    public void StopString_CutsTheTextBeforeIt_AndStreamsNothingOfIt()
    {
        using var model = DolmaVocabularyModel();
        var tokenizer = new Dolma2Tokenizer();
        var generator = new TextGenerator(model, tokenizer);
        var prompt = tokenizer.Encode("The quick brown fox").ToArray();
        var free = generator.Generate([new GenerationRequest(prompt, new SamplingOptions { MaxNewTokens = 12 })])[0];
        Assert.True(free.Text!.Length >= 6, $"need some text to cut: '{free.Text}'");
        var stop = free.Text.Substring(free.Text.Length / 2, 2);
        var streamed = new System.Text.StringBuilder();

        var cut = generator.Generate([new GenerationRequest(prompt, new SamplingOptions { MaxNewTokens = 12, StopStrings = [stop] })], e => streamed.Append(e.Text))[0];

        Assert.Equal(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(cut.Text, streamed.ToString());
        Assert.Equal("stop", cut.FinishReason);
    }

    [Fact]
    public void Generate_RejectsPromptsBeyondTheContext_WithAClearError()
    {
        var reference = HfReference.Load("olmo2-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var error = Assert.Throws<FlexOlmo.Formats.FlexOlmoException>(() =>
            new TextGenerator(model, null).Generate([new GenerationRequest(Enumerable.Repeat(5, 250).ToArray(), new SamplingOptions { MaxNewTokens = 10 })]));
        Assert.Contains("max_position_embeddings (256)", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A small random model with the dolma2 vocabulary, so real text can be generated and decoded.</summary>
    private static Olmo2ForCausalLM DolmaVocabularyModel()
    {
        var config = ModelConfig.Load(TestPaths.Fixture("olmo2-tiny")) with { VocabSize = 100352, HiddenSize = 32, IntermediateSize = 64, NumAttentionHeads = 2, NumKeyValueHeads = 2, HeadDim = 16, NumHiddenLayers = 1, EosTokenIds = [], PadTokenId = 100277 };
        var model = new Olmo2ForCausalLM(config, CPU, ScalarType.Float32);
        model.InitializeWeights(3);
        using (no_grad())
        {
            foreach (var (_, p) in model.NamedParameters().Where(p => p.Parameter.dim() == 2))
            {
                p.mul_(20); // sharper distributions than the init, so greedy text is varied
            }
        }

        return model;
    }
}
