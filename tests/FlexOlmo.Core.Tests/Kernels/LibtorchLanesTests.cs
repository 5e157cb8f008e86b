using System.Collections.Concurrent;
using FlexOlmo.Core.Kernels;
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

    [Fact]
    public void For_GivesOneLane_ToASingleTask()
    {
        Assert.Equal(1, LibtorchLanes.For(1));
    }
}
