using FlexOlmo.Core.Generation;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Generation;

public sealed class TokenSamplerTests
{
    public static TheoryData<ScalarType, float[]> Vectors => new()
    {
        { ScalarType.Float32, [1f, 3f, 2f, 3f] }, // a tie: the first of the largest
        { ScalarType.BFloat16, [1f, 3f, 2f, 3f] },
        { ScalarType.Float32, [float.NegativeInfinity, float.NegativeInfinity] },
        { ScalarType.Float32, [5f, float.NaN, 7f, float.NaN] }, // the first NaN, as torch.argmax
        { ScalarType.BFloat16, [-2f, float.PositiveInfinity, float.NaN] },
        { ScalarType.Float32, [-1e30f, -3e38f, float.PositiveInfinity, float.PositiveInfinity] },
    };

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Greedy_PicksWhatTorchArgmaxPicks_WithTiesAndNaNs(ScalarType dtype, float[] values)
    {
        using var scope = NewDisposeScope();
        var logits = tensor(values).to(dtype);

        Assert.Equal(logits.to(ScalarType.Float64).argmax().item<long>(), TokenSampler.Greedy(logits));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Greedy_OnRowsOfABatchesLogits_PicksWhatTorchArgmaxPicks(ScalarType dtype)
    {
        // Rows of [B, 1, V] logits are views at an offset into one buffer, as the generator passes them.
        using var scope = NewDisposeScope();
        manual_seed(3);
        var logits = randn([5, 1, 50304]).to(dtype);
        logits[3, 0, 777] = tensor(100f).to(dtype);
        logits[3, 0, 901] = tensor(100f).to(dtype); // a tie after the first

        for (var b = 0; b < 5; b++)
        {
            Assert.Equal(logits[b, 0].to(ScalarType.Float64).argmax().item<long>(), TokenSampler.Greedy(logits[b, 0]));
        }

        Assert.Equal(777, TokenSampler.Greedy(logits[3, 0]));
        Assert.Equal(logits[1, 0].argmax().item<long>(), TokenSampler.Greedy(logits[1, 0].to(ScalarType.Float16))); // other dtypes through libtorch
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Greedy_FindsTheFirstNaNOrFirstLargest_InEveryLaneAndTheTail(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        foreach (var count in new[] { 8, 13, 16, 37 })
        {
            for (var at = 0; at < count; at++)
            {
                var largest = randn([count]);
                largest[at] = tensor(50f);
                largest[count - 1] = tensor(50f); // a tie at the end, after the first
                var withNaN = randn([count]);
                withNaN[at] = tensor(float.NaN);
                withNaN[count - 1] = tensor(float.NaN);
                withNaN[0] = tensor(float.PositiveInfinity);
                foreach (var values in new[] { largest.to(dtype), withNaN.to(dtype) })
                {
                    Assert.Equal(values.to(ScalarType.Float64).argmax().item<long>(), TokenSampler.Greedy(values));
                }
            }
        }
    }
}
