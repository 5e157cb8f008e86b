using System.Collections.Concurrent;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class LibtorchLanesTests
{
    [Fact]
    public void Run_RunsEveryTaskOnce_EachLaneOnItsShareOfLibtorchsThreads()
    {
        var threads = get_num_threads();
        var lanes = LibtorchLanes.For(8);
        Assert.InRange(lanes, 1, Math.Max(1, Math.Min(8, threads)));
        var runs = new int[8];
        var seen = new ConcurrentBag<(string? Thread, int LibtorchThreads)>();

        LibtorchLanes.Run(runs.Length, lanes, task =>
        {
            Interlocked.Increment(ref runs[task]);
            seen.Add((Thread.CurrentThread.Name, get_num_threads()));
        });

        Assert.All(runs, count => Assert.Equal(1, count));
        Assert.Equal(OperatingSystem.IsLinux() && threads > 1, lanes > 1); // the bundled libtorch's OpenMP takes per-thread counts
        foreach (var (thread, libtorchThreads) in seen)
        {
            // On a lane, with the caller's threads shared out; on the caller (while another test's call holds the
            // lanes), with all of them.
            var onLane = thread?.StartsWith("flexolmo-libtorch-lane-", StringComparison.Ordinal) ?? false;
            Assert.Equal(onLane ? threads / lanes : threads, libtorchThreads);
        }
    }

    [Fact]
    public void Run_LeavesLibtorchsThreadCount_ForTheCallerAndForThreadsStartedLater()
    {
        var before = get_num_threads();
        var lanes = LibtorchLanes.For(4);
        LibtorchLanes.Run(4, lanes, _ => Assert.True(get_num_threads() >= 1));

        Assert.Equal(before, get_num_threads());
        var later = 0;
        var thread = new Thread(() => later = get_num_threads()); // libtorch sets a new thread's count from its process-wide one
        thread.Start();
        thread.Join();
        Assert.Equal(before, later);
    }

    [Fact]
    public void Run_RunsEveryTask_ThenThrowsTheFirstFailure()
    {
        var runs = new int[6];
        var error = Assert.Throws<InvalidOperationException>(() => LibtorchLanes.Run(runs.Length, LibtorchLanes.For(runs.Length), task =>
        {
            Interlocked.Increment(ref runs[task]);
            if (task == 2)
            {
                throw new InvalidOperationException("task 2 failed");
            }
        }));

        Assert.Equal("task 2 failed", error.Message);
        Assert.All(runs, count => Assert.Equal(1, count));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Run_TasksSeeTheCallersAutogradMode(bool gradEnabled)
    {
        using var mode = gradEnabled ? enable_grad() : no_grad();
        var seen = new ConcurrentBag<bool>();

        LibtorchLanes.Run(4, LibtorchLanes.For(4), _ => seen.Add(is_grad_enabled()));

        Assert.Equal(4, seen.Count);
        Assert.All(seen, enabled => Assert.Equal(gradEnabled, enabled)); // libtorch keeps the mode per thread: a lane starts with autograd on
    }

    [Theory]
    [InlineData(300, 1024, 1000)] // a part that is not a multiple of the lanes' column multiple
    [InlineData(512, 1024, 2816)] // an expert's gate over a prefill's rows
    [InlineData(97, 2048, 4096)]
    public void Linear_OfALargeBf16Product_SplitOverLanes_GivesLinearsBits(int rows, int inFeatures, int outFeatures)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(rows);
        var input = randn([1, rows, inFeatures]).to(ScalarType.BFloat16); // [1, M, in]
        var weight = (randn([outFeatures, inFeatures]) * 0.05).to(ScalarType.BFloat16); // [out, in]
        Assert.Equal(LibtorchLanes.For(2), Olmo2Linear.SplitsOverLanes(ScalarType.BFloat16, rows, inFeatures, outFeatures));
        Assert.Equal(1, Olmo2Linear.SplitsOverLanes(ScalarType.Float32, rows, inFeatures, outFeatures)); // fp32 products may be MKL's

        var actual = Olmo2Linear.Apply(input, weight); // [1, M, out]

        Assert.Equal(new long[] { 1, rows, outFeatures }, actual.shape);
        Assert.True(actual.equal(nn.functional.linear(input, weight)).all().item<bool>(), "the product split over lanes differs from linear");
    }

    [Fact]
    public void For_GivesOneLane_ToASingleTask()
    {
        Assert.Equal(1, LibtorchLanes.For(1));
    }
}
