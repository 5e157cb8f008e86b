using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Tests;

public sealed class AdamWOptimizerTests
{
    [Fact]
    public void Step_MatchesTorchSharpsAdamW_BitForBit_WithDecayAndLearningRateScales()
    {
        manual_seed(7);
        var initial = new[] { randn(33, 17), randn(17), randn(5, 9) };
        var decay = new[] { true, false, true };
        var scales = new[] { 1.0, 0.1, 2.0 };
        var ours = initial.Select(t => new Parameter(t.clone())).ToList();
        var theirs = initial.Select(t => new Parameter(t.clone())).ToList();
        using var lean = new AdamWOptimizer(ours.Select((p, i) => ($"p{i}", p, decay[i], scales[i])).ToList(), 0.9, 0.95, 1e-8, 0.1);
        var groups = Enumerable.Range(0, 3).Select(i => new AdamW.ParamGroup([theirs[i]], new AdamW.Options { LearningRate = 3e-3 * scales[i], weight_decay = decay[i] ? 0.1 : 0.0 })).ToList();
        using var reference = optim.AdamW(groups, 3e-3, 0.9, 0.95, 1e-8, 0.1);

        for (var step = 0; step < 5; step++)
        {
            for (var i = 0; i < 3; i++)
            {
                using var grad = randn(initial[i].shape);
                ours[i].grad = grad.clone();
                theirs[i].grad = grad.clone();
            }

            lean.Step(3e-3);
            reference.step();
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.False(ours[i].eq(initial[i]).all().item<bool>(), $"parameter {i} did not move");
            Assert.True(ours[i].eq(theirs[i]).all().item<bool>(), $"parameter {i}: max difference {(ours[i] - theirs[i]).abs().max().item<float>()}");
        }

        Assert.Equal(5, lean.Steps);
    }
}
