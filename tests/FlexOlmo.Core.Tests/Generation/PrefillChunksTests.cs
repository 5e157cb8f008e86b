using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Generation;

public sealed class PrefillChunksTests
{
    [Theory]
    [InlineData(1, new[] { 1 })]
    [InlineData(PrefillChunks.Tokens, new[] { PrefillChunks.Tokens })]
    [InlineData(PrefillChunks.Tokens + 1, new[] { PrefillChunks.Tokens, 1 })]
    [InlineData((2 * PrefillChunks.Tokens) + 5, new[] { PrefillChunks.Tokens, PrefillChunks.Tokens, 5 })]
    public void Of_CoversThePromptInOrder_InChunksOfAtMostTheChunkSize(int length, int[] expected)
    {
        var chunks = PrefillChunks.Of(length).ToArray();

        Assert.Equal(expected, chunks.Select(c => c.Length));
        Assert.Equal(Enumerable.Range(0, chunks.Length).Select(i => i * PrefillChunks.Tokens), chunks.Select(c => c.Start));
    }

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
        foreach (var (start, chunk) in PrefillChunks.Of(length))
        {
            last?.Dispose();
            last = model.Forward(ids.narrow(1, start, chunk), new ForwardOptions { Cache = cache, LastTokenOnly = true });
        }

        var difference = (last! - oneShot).abs().max().item<float>();
        last!.Dispose();
        Assert.True(difference < 1e-4, $"max |chunked - one-shot| = {difference:E2}");
    }
}
