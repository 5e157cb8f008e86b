using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Generation;

public sealed class PrefillChunksTests
{
    /// <summary>The serve benchmark's model: hidden 512, 8 layers, 8 heads of 64, 8 experts top-2.</summary>
    private static readonly ModelConfig ServeModel = ModelPresets.Get("flexolmo-7x7b") with
    {
        HiddenSize = 512,
        IntermediateSize = 1536,
        NumHiddenLayers = 8,
        NumAttentionHeads = 8,
        NumKeyValueHeads = 8,
        HeadDim = 64,
        NumExperts = 8,
        NumExpertsPerTok = 2,
    };

    public static TheoryData<string, int> Prompts => new()
    {
        { "serve", 1 },
        { "serve", PrefillChunks.Tokens },
        { "serve", PrefillChunks.Tokens + 1 },
        { "serve", 4096 },
        { "demo", 256 },
        { "flexolmo-7x7b", 4096 },
    };

    [Theory]
    [MemberData(nameof(Prompts))]
    public void Of_CoversThePromptInOrder_InChunksOfOneToTheChunkSize(string model, int length)
    {
        var chunks = PrefillChunks.Of(length, Config(model)).ToArray();

        Assert.Equal(length, chunks.Sum(c => c.Length));
        Assert.Equal(0, chunks[0].Start);
        Assert.All(chunks.Zip(chunks.Skip(1)), pair => Assert.Equal(pair.First.Start + pair.First.Length, pair.Second.Start));
        Assert.All(chunks, c => Assert.InRange(c.Length, 1, PrefillChunks.Tokens));
        Assert.Equal(Math.Min(length, PrefillChunks.Tokens), chunks[0].Length);
    }

    [Theory]
    [InlineData("serve")]
    [InlineData("demo")]
    [InlineData("flexolmo-7x7b")]
    public void Next_TakesThePositionsThatFitTheFirstChunksArithmetic_AndNoMore(string model)
    {
        var config = Config(model);
        var budget = PrefillChunks.Flops(config, 0, PrefillChunks.Tokens);
        const int Length = 4096;
        foreach (var (start, length) in PrefillChunks.Of(Length, config))
        {
            Assert.True(length == 1 || PrefillChunks.Flops(config, start, length) <= budget, $"chunk at {start} of {length} positions");
            if (length < PrefillChunks.Tokens && start + length < Length)
            {
                Assert.True(PrefillChunks.Flops(config, start, length + 1) > budget, $"chunk at {start} could take {length + 1} positions");
            }
        }
    }

    [Fact]
    public void Next_TakesFewerPositions_AsThePromptsKeysGrow()
    {
        // Serve model: a position multiplies 2 * 8 * (4 * 512^2 + 8 * 512 + 2 * 3 * 512 * 1536) = 92.34 MFLOP of weights, and
        // attends at 4 * 512 * 8 = 16,384 FLOPs per key; so 24 positions at the start are worth about 17 after 2,000.
        Assert.Equal((0, 24), PrefillChunks.Next(0, 4096, ServeModel));
        Assert.Equal((24, 23), PrefillChunks.Next(24, 4096, ServeModel));
        Assert.Equal((2000, 17), PrefillChunks.Next(2000, 4096, ServeModel));
        Assert.Equal((4000, 14), PrefillChunks.Next(4000, 4096, ServeModel));
        Assert.Equal((4090, 6), PrefillChunks.Next(4090, 4096, ServeModel)); // the prompt's end
    }

    [Theory]
    [InlineData(10, 10)]
    [InlineData(11, 10)]
    [InlineData(-1, 10)]
    public void Next_Throws_WhenNoPositionIsLeftOrDoneIsNegative(int done, int length)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PrefillChunks.Next(done, length, ServeModel));
    }

    [Fact]
    public void Flops_CountsTheWeightsAndTheKeys_OfEachPosition()
    {
        var config = ModelPresets.Get("demo"); // dense: 4 layers, hidden 256, MLP 1024, 4 heads of 64
        var weights = 2.0 * 4 * ((4.0 * 256 * 256) + (3.0 * 256 * 1024));
        var perKey = 4.0 * 256 * 4;

        Assert.Equal(weights + perKey, PrefillChunks.Flops(config, 0, 1));
        Assert.Equal((3 * weights) + (perKey * (11 + 12 + 13)), PrefillChunks.Flops(config, 10, 3));
    }

    private static ModelConfig Config(string name) => name == "serve" ? ServeModel : ModelPresets.Get(name);

    [Fact]
    public void Generate_OfALongPrompt_GivesTheLogitsOfAOneShotForward_AloneAndLeftPadded()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        var length = PrefillChunks.Tokens + (PrefillChunks.Tokens / 2); // two chunks, the second partial
        var prompt = Enumerable.Range(0, length).Select(i => ((i * 37) + 11) % 500).ToArray();
        using var ids = tensor(prompt.Select(t => (long)t).ToArray(), [1, length]);
        using var oneShot = model.Forward(ids, new ForwardOptions { LastTokenOnly = true }); // [1, 1, V], no cache, no chunks
        var expected = oneShot.argmax(-1).item<long>();

        // Greedy first tokens through generate's chunked prefill: alone, and left-padded beside a short prompt.
        var generator = new TextGenerator(model, null);
        var alone = generator.Generate([new GenerationRequest(prompt, new SamplingOptions { MaxNewTokens = 1 })])[0];
        var padded = generator.Generate([new GenerationRequest(prompt, new SamplingOptions { MaxNewTokens = 1 }), new GenerationRequest(prompt.Take(7).ToArray(), new SamplingOptions { MaxNewTokens = 1 })]);

        Assert.Equal([(int)expected], alone.TokenIds);
        Assert.Equal([(int)expected], padded[0].TokenIds);

        // The chunked cache holds what the one-shot pass computes: the last position's logits agree to fp32 rounding.
        using var cache = model.CreateCache(1, length);
        Tensor? last = null;
        foreach (var (start, chunk) in PrefillChunks.Of(length, model.Config))
        {
            last?.Dispose();
            last = model.Forward(ids.narrow(1, start, chunk), new ForwardOptions { Cache = cache, LastTokenOnly = true });
        }

        var difference = (last! - oneShot).abs().max().item<float>();
        last!.Dispose();
        Assert.True(difference < 1e-4, $"max |chunked - one-shot| = {difference:E2}");
    }
}
