using FlexOlmo.Core.Kernels;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class KernelThreadsTests
{
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 2)]
    [InlineData(37, 2)]
    [InlineData(37, 1)]
    [InlineData(500, 3)]
    public void For_RunsEveryTaskExactlyOnce_ForAnyCountAndParallelism(int count, int parallelism)
    {
        var runs = new int[count];
        KernelThreads.For(count, parallelism, task => Interlocked.Increment(ref runs[task]));
        Assert.All(runs, r => Assert.Equal(1, r));
    }

    [Theory]
    [InlineData(0, 2, 8)]
    [InlineData(1, 2, 8)]
    [InlineData(5, 2, 8)] // fewer indices than tasks
    [InlineData(301, 2, 4)]
    [InlineData(301, 1, 8)] // one range, on the caller
    public void ForRanges_CoversEveryIndexExactlyOnce_InRangesOfAtMostTheTasksAsked(int count, int parallelism, int tasksPerThread)
    {
        var runs = new int[count];
        var ranges = 0;
        KernelThreads.ForRanges(count, parallelism, tasksPerThread, (from, to) =>
        {
            Assert.InRange(from, 0, to);
            Interlocked.Increment(ref ranges);
            for (var i = from; i < to; i++)
            {
                Interlocked.Increment(ref runs[i]);
            }
        });

        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.InRange(ranges, 1, parallelism < 2 ? 1 : Math.Max(1, Math.Min(count, parallelism * tasksPerThread)));
    }

    [Fact]
    public void For_RunsTasksOnAnotherThread_WhenAskedForTwo()
    {
        // Each task waits a moment, so a worker (awake or woken) takes some of them.
        var threads = new HashSet<int>();
        for (var attempt = 0; attempt < 20 && threads.Count < 2; attempt++)
        {
            KernelThreads.For(8, 2, _ =>
            {
                Thread.Sleep(2);
                lock (threads)
                {
                    threads.Add(Environment.CurrentManagedThreadId);
                }
            });
        }

        Assert.Equal(2, threads.Count);
    }

    [Fact]
    public void For_Completes_AfterTheWorkersFellAsleep()
    {
        // The second call finds the worker asleep (it spins only 50 µs) and must wake it, or run everything itself.
        var runs = new int[64];
        KernelThreads.For(64, 2, task => Interlocked.Increment(ref runs[task]));
        Thread.Sleep(50);
        KernelThreads.For(64, 2, task => Interlocked.Increment(ref runs[task]));
        Assert.All(runs, r => Assert.Equal(2, r));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void For_RethrowsATaskFailure_AfterTheOtherTasksRan(int parallelism)
    {
        // One thread (or a call made while another runs) takes the tasks on the caller alone: the same promise.
        var runs = new int[16];
        var error = Assert.Throws<InvalidOperationException>(() => KernelThreads.For(16, parallelism, task =>
        {
            Interlocked.Increment(ref runs[task]);
            if (task == 5)
            {
                throw new InvalidOperationException("task 5 failed");
            }
        }));

        Assert.Equal("task 5 failed", error.Message);
        Assert.All(runs, r => Assert.Equal(1, r));
        KernelThreads.For(4, 2, task => Interlocked.Increment(ref runs[task])); // still usable after a failure
        Assert.Equal(2, runs[3]);
    }

    [Fact]
    public void For_RunsNestedAndConcurrentCallsToCompletion()
    {
        // A task that calls in again, and callers on several threads at once: each runs its own tasks where the
        // workers are taken, so every call completes with every task run once.
        var total = 0;
        Parallel.For(0, 4, _ =>
        {
            for (var call = 0; call < 50; call++)
            {
                KernelThreads.For(6, 2, _ => KernelThreads.For(3, 2, _ => Interlocked.Increment(ref total)));
            }
        });

        Assert.Equal(4 * 50 * 6 * 3, total);
    }
}
