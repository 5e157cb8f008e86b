using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Testing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Modeling;

/// <summary>Logits and router choices against what transformers 5.17 computed for the same weights and input.</summary>
public sealed class GoldenLogitsTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-4f;

    [Theory]
    [InlineData("olmo2-tiny")]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public void Forward_MatchesTransformersLogits_ForEachFixture(string fixture)
    {
        var reference = HfReference.Load(fixture);
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var logits = Forward(model, reference.InputIds, null);

        var maxDiff = MaxAbsDifference(logits, reference.Logits);
        output.WriteLine($"{fixture}: max |logits - transformers| = {maxDiff:E3}");
        Assert.True(maxDiff < Tolerance, $"{fixture}: max |logits - HF| = {maxDiff:E3}");
    }

    /// <summary>The same golden check on a GPU: needs FLEXOLMO_LIBTORCH at a CUDA libtorch, so it stays out of the default run.</summary>
    [Theory]
    [Trait("Category", "Gpu")] // excluded by the README's filter Category!=Gpu
    [InlineData("olmo2-tiny")]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public void Forward_OnCuda_MatchesTransformersLogits_ForEachFixture(string fixture)
    {
        var reference = HfReference.Load(fixture);
        using var model = CheckpointLoader.Load(reference.Folder, TorchRuntime.ResolveDevice("cuda"), ScalarType.Float32);
        using var logits = Forward(model, reference.InputIds, null);

        var maxDiff = MaxAbsDifference(logits, reference.Logits);
        output.WriteLine($"{fixture} on {model.Device}: max |logits - transformers| = {maxDiff:E3}");
        Assert.True(maxDiff < Tolerance, $"{fixture} on {model.Device}: max |logits - HF| = {maxDiff:E3}");
    }

    [Theory]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public void Router_ChoosesTheSameExpertsAsTransformers_ForEachLayer(string fixture)
    {
        var reference = HfReference.Load(fixture);
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var trace = new RouterTrace(recordChoices: true);
        using var ids = tensor(reference.InputIds.SelectMany(r => r).ToArray(), [reference.InputIds.Length, reference.InputIds[0].Length]);
        using (no_grad())
        {
            using var logits = model.Forward(ids, new ForwardOptions { Trace = trace });
        }

        Assert.Equal(reference.Router.Count, trace.Choices.Count);
        for (var layer = 0; layer < reference.Router.Count; layer++)
        {
            var expected = reference.Router[layer];
            var indices = trace.Choices[layer].Indices.data<long>().ToArray();
            var weights = trace.Choices[layer].Weights.data<float>().ToArray();
            var routerLogits = trace.Logits[layer].data<float>().ToArray();
            var k = expected.TopkIndices[0].Length;
            var experts = expected.RouterLogits[0].Length;
            for (var n = 0; n < expected.TopkIndices.Length; n++)
            {
                Assert.Equal(expected.TopkIndices[n], indices.Skip(n * k).Take(k).ToArray());
                for (var j = 0; j < k; j++)
                {
                    Assert.InRange(weights[(n * k) + j], expected.TopkWeights[n][j] - Tolerance, expected.TopkWeights[n][j] + Tolerance);
                }

                for (var e = 0; e < experts; e++)
                {
                    Assert.InRange(routerLogits[(n * experts) + e], expected.RouterLogits[n][e] - Tolerance, expected.RouterLogits[n][e] + Tolerance);
                }
            }
        }
    }

    [Fact]
    public void ExpertMask_ExcludingExpert3_ReproducesTheModelWithExpert3Removed()
    {
        var full = HfReference.Load("flexolmo-tiny");
        var optout = HfReference.Load("flexolmo-tiny-optout");
        using var model = CheckpointLoader.Load(full.Folder, CPU, ScalarType.Float32);
        var rows = full.InputIds.Select(_ => ExpertSet.Exclude(4, [3])).ToArray();
        using var bias = ExpertMask.ToRouterBias(rows, 4, CPU);
        using var logits = Forward(model, full.InputIds, bias);

        var maxDiff = MaxAbsDifference(logits, optout.Logits);
        output.WriteLine($"max |masked(3) - optout| = {maxDiff:E3}");
        Assert.True(maxDiff < Tolerance, $"max |masked - optout| = {maxDiff:E3}");
        var unmasked = MaxAbsDifference(logits, full.Logits);
        Assert.True(unmasked > 1e-3, "masking expert 3 must change the logits of this fixture");
    }

    [Fact]
    public void ExpertMask_PerRow_AppliesEachRowsOwnSelection()
    {
        var full = HfReference.Load("flexolmo-tiny");
        var optout = HfReference.Load("flexolmo-tiny-optout");
        using var model = CheckpointLoader.Load(full.Folder, CPU, ScalarType.Float32);
        using var bias = ExpertMask.ToRouterBias([ExpertSet.All(4), ExpertSet.Exclude(4, [3])], 4, CPU);
        using var logits = Forward(model, full.InputIds, bias);

        Assert.True(MaxAbsDifference(logits[0].unsqueeze(0), [full.Logits[0]]) < Tolerance);
        Assert.True(MaxAbsDifference(logits[1].unsqueeze(0), [optout.Logits[1]]) < Tolerance);
    }

    internal static Tensor Forward(Olmo2ForCausalLM model, long[][] inputIds, Tensor? expertBias)
    {
        using var ids = tensor(inputIds.SelectMany(r => r).ToArray(), [inputIds.Length, inputIds[0].Length]).to(model.Device);
        using var noGrad = no_grad();
        using var logits = model.Forward(ids, new ForwardOptions { ExpertBias = expertBias?.to(model.Device) });
        return logits.to(ScalarType.Float32).cpu();
    }

    internal static float MaxAbsDifference(Tensor logits, float[][][] expected)
    {
        var values = logits.contiguous().data<float>().ToArray();
        var vocab = expected[0][0].Length;
        var tokens = expected[0].Length;
        Assert.Equal(expected.Length * tokens * vocab, values.Length);
        var max = 0f;
        for (var b = 0; b < expected.Length; b++)
        {
            for (var t = 0; t < tokens; t++)
            {
                for (var v = 0; v < vocab; v++)
                {
                    max = Math.Max(max, Math.Abs(values[(((b * tokens) + t) * vocab) + v] - expected[b][t][v]));
                }
            }
        }

        return max;
    }
}
