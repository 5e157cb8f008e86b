using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// Worker threads that stay alive between kernel calls: <see cref="For"/> runs a call's tasks on the calling thread and
/// on these, which wait for the next call by spinning a short while before they sleep.
/// </summary>
/// <remarks>
/// Written by hand because <c>Parallel.For</c> costs too much at decode sizes: a server step makes about 150 parallel
/// calls of 50-500 µs each, and the profile showed the calling thread waiting 17-25% of the step for pool threads to
/// wake and pick up work. Only one call runs here at a time; a call made while another runs (another thread, or a task
/// that calls in again) runs its tasks on its own thread, which is always correct.
/// </remarks>
internal static class KernelThreads
{
    /// <summary>How long an idle worker spins for the next call before it sleeps: the gaps between a step's calls are mostly shorter.</summary>
    /// <remarks>Measured on the server's step: 50 µs was 2-5% faster than 200 µs and 1 ms, which take the cores from libtorch's own threads between calls.</remarks>
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000;

    private static readonly object StartLock = new();
    private static readonly SemaphoreSlim Wake = new(0);
    private static Job? _current;
    private static int _busy;
    private static int _sleeping;
    private static int _started;
    private static long _generation;

    /// <summary>Runs <paramref name="body"/>(0 .. <paramref name="count"/> - 1) on up to <paramref name="parallelism"/> threads, the caller among them; returns when all are done.</summary>
    public static void For(int count, int parallelism, Action<int> body)
    {
        var helpers = Math.Min(parallelism, count) - 1;
        if (helpers <= 0 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            ExceptionDispatchInfo? failure = null;
            for (var i = 0; i < count; i++)
            {
                try
                {
                    body(i);
                }
                catch (Exception e)
                {
                    failure ??= ExceptionDispatchInfo.Capture(e); // as on the workers: every task runs, then the first failure is thrown
                }
            }

            failure?.Throw();
            return;
        }

        try
        {
            Start(helpers);
            var job = new Job(body, count, helpers, ++_generation);
            Volatile.Write(ref _current, job);
            Interlocked.MemoryBarrier(); // publish the job before reading _sleeping (the workers check in the other order)
            var sleeping = Volatile.Read(ref _sleeping);
            if (sleeping > 0)
            {
                Wake.Release(sleeping);
            }

            job.Work();
            var spin = new SpinWait();
            while (Volatile.Read(ref job.Done) < count)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }

            job.Failure?.Throw();
        }
        finally
        {
            Volatile.Write(ref _current, null); // the workers keep no reference to a finished call's body or what it captured
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/>(from, to) over the indices 0 .. <paramref name="count"/> - 1 in even ranges, up to
    /// <paramref name="tasksPerThread"/> of them per thread (so that a thread that starts late finds work left), on up to
    /// <paramref name="parallelism"/> threads; with a parallelism of 1, in one range on the calling thread.
    /// </summary>
    public static void ForRanges(int count, int parallelism, int tasksPerThread, Action<int, int> body)
    {
        if (parallelism < 2 || count < 2)
        {
            body(0, count);
            return;
        }

        var tasks = Math.Min(count, parallelism * tasksPerThread);
        var perTask = (count + tasks - 1) / tasks;
        For(tasks, parallelism, task => body(Math.Min(count, task * perTask), Math.Min(count, (task + 1) * perTask)));
    }

    private static void Start(int workers)
    {
        if (Volatile.Read(ref _started) >= workers)
        {
            return;
        }

        lock (StartLock)
        {
            for (var index = _started; index < workers; index++)
            {
                var thread = new Thread(Worker) { IsBackground = true, Name = $"flexolmo-kernel-{index + 1}" };
                thread.Start(index);
            }

            Volatile.Write(ref _started, Math.Max(_started, workers));
        }
    }

    private static void Worker(object? state)
    {
        var index = (int)state!;
        var seen = 0L;
        while (true)
        {
            var job = WaitForJob(seen);
            seen = job.Generation;
            if (index < job.Helpers)
            {
                job.Work();
            }
        }
    }

    /// <summary>The next job after generation <paramref name="seen"/>: spins for 50 µs, then sleeps until a call wakes it.</summary>
    private static Job WaitForJob(long seen)
    {
        var until = Stopwatch.GetTimestamp() + SpinTicks;
        var spins = 0;
        while (true)
        {
            var job = Volatile.Read(ref _current);
            if (job is not null && job.Generation != seen)
            {
                return job;
            }

            if ((++spins & 15) != 0 || Stopwatch.GetTimestamp() < until)
            {
                Thread.SpinWait(30);
                continue;
            }

            Interlocked.Increment(ref _sleeping); // a full fence: a call that published before this sees it, or this sees the call
            job = Volatile.Read(ref _current);
            if (job is null || job.Generation == seen)
            {
                Wake.Wait(); // a spare release only makes this look again
            }

            Interlocked.Decrement(ref _sleeping);
            until = Stopwatch.GetTimestamp() + SpinTicks;
        }
    }

    /// <summary>One call's tasks: each thread claims the next index until none is left. A worker that arrives late finds none.</summary>
    private sealed class Job(Action<int> body, int count, int helpers, long generation)
    {
        public int Next;
        public int Done;

        public int Helpers { get; } = helpers;

        public long Generation { get; } = generation;

        private ExceptionDispatchInfo? _failure;

        public ExceptionDispatchInfo? Failure => Volatile.Read(ref _failure);

        public void Work()
        {
            int task;
            while ((task = Interlocked.Increment(ref Next) - 1) < count)
            {
                try
                {
                    body(task);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
                finally
                {
                    Interlocked.Increment(ref Done);
                }
            }
        }
    }
}
