using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// Threads on which libtorch runs each op on a share of the cores, so that independent ops run side by side instead
/// of one after another, each split over all of them: a bf16 prefill's routed experts, whose products are too small to
/// keep every core busy on their own.
/// </summary>
/// <remarks>
/// <para>
/// Written by hand because libtorch sets its thread count per thread only through OpenMP's own call, which TorchSharp
/// does not expose: <c>torch.set_num_threads</c> also changes the count that every thread started later begins with.
/// So a lane first lets libtorch initialise its count, then sets its own through <c>omp_set_num_threads</c> (from
/// libtorch's libgomp), and checks that libtorch reports it. Where that fails (another OpenMP runtime, another
/// platform), there are no lanes and the callers run their ops one after another as before. Only bf16 ops come here:
/// libtorch computes their products with oneDNN, which takes its threads from OpenMP, where fp32 products may go to
/// MKL, which keeps counts of its own.
/// </para>
/// <para>
/// libtorch's products and elementwise ops split their output over the threads, not their sums, so an op gives the
/// same bits on one thread as on several (checked for the experts' products and silu, fp32 and bf16, 1-517 rows).
/// Measured on a 2-core Zen 5 VM: one bf16 prefill layer's experts (1,024 routed rows over 8 experts, as the forward
/// benchmark routes them) took 31-34 ms on two single-threaded lanes against 39-43 ms one after another on two
/// threads.
/// </para>
/// </remarks>
internal static unsafe class LibtorchLanes
{
    private static readonly object Gate = new();
    private static readonly List<Lane> Started = [];
    private static delegate* unmanaged<int, void> _setOpenMpThreads;
    private static int _state; // 0: not looked up yet, 1: usable, -1: not available
    private static Job? _current;

    [ThreadStatic]
    private static bool _onLane;

    /// <summary>
    /// How many lanes <paramref name="tasks"/> independent tasks get from a thread running libtorch on all its threads:
    /// one per thread, at most one per task. 1 where lanes are not available, and on a lane itself (its task already has
    /// its share of the cores).
    /// </summary>
    public static int For(int tasks)
    {
        if (_onLane || tasks < 2)
        {
            return 1;
        }

        var threads = get_num_threads();
        return threads < 2 || !Available() ? 1 : Math.Min(tasks, threads);
    }

    /// <summary>
    /// Runs <paramref name="body"/>(0 .. <paramref name="count"/> - 1) on <paramref name="lanes"/> lanes, which share the
    /// calling thread's libtorch threads, and returns when all are done; every task runs, then the first failure is
    /// thrown. A free lane takes the next index, so give the largest tasks first. While another call runs, the tasks run
    /// on the calling thread.
    /// </summary>
    public static void Run(int count, int lanes, Action<int> body)
    {
        var threads = Math.Max(1, get_num_threads() / Math.Max(1, lanes));
        var job = lanes > 1 && Available() ? new Job(body, count, Math.Min(lanes, count), threads, is_grad_enabled()) : null;
        if (job is null || Interlocked.CompareExchange(ref _current, job, null) is not null)
        {
            RunHere(count, body);
            return;
        }

        try
        {
            var workers = Lanes(job.Lanes);
            for (var i = 0; i < job.Lanes; i++)
            {
                workers[i].Give(job);
            }

            job.Finished.Wait();
            job.Failure?.Throw();
        }
        finally
        {
            Volatile.Write(ref _current, null);
        }
    }

    private static void RunHere(int count, Action<int> body)
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
                failure ??= ExceptionDispatchInfo.Capture(e);
            }
        }

        failure?.Throw();
    }

    /// <summary>Whether libtorch's per-thread counts can be set here: looked up once, then proven on the first lane.</summary>
    private static bool Available()
    {
        if (Volatile.Read(ref _state) != 0)
        {
            return _state > 0;
        }

        lock (Gate)
        {
            if (_state == 0)
            {
                _state = LookUp() && Lanes(1)[0].Proven ? 1 : -1;
            }

            return _state > 0;
        }
    }

    private static bool LookUp()
    {
        var directory = TorchNative.LibTorchDirectory;
        if (!OperatingSystem.IsLinux() || directory is null || !Directory.Exists(directory))
        {
            return false;
        }

        var openMp = Directory.GetFiles(directory, "libgomp*.so*");
        if (openMp.Length != 1 || !NativeLibrary.TryLoad(openMp[0], out var openMpHandle)
            || !NativeLibrary.TryGetExport(openMpHandle, "omp_set_num_threads", out var setOpenMp))
        {
            return false;
        }

        _setOpenMpThreads = (delegate* unmanaged<int, void>)setOpenMp;
        return true;
    }

    /// <summary>The first <paramref name="count"/> lanes, started where missing.</summary>
    private static List<Lane> Lanes(int count)
    {
        lock (Gate)
        {
            while (Started.Count < count)
            {
                Started.Add(new Lane(Started.Count));
            }

            return Started;
        }
    }

    /// <summary>One call: each lane takes the next index until none is left, with the caller's autograd mode (libtorch keeps it per thread).</summary>
    private sealed class Job(Action<int> body, int count, int lanes, int threads, bool gradEnabled)
    {
        private int _next;
        private ExceptionDispatchInfo? _failure;

        public int Lanes { get; } = lanes;

        /// <summary>libtorch threads per lane.</summary>
        public int Threads { get; } = threads;

        public CountdownEvent Finished { get; } = new(lanes);

        public ExceptionDispatchInfo? Failure => Volatile.Read(ref _failure);

        public void Work()
        {
            using var mode = gradEnabled ? enable_grad() : no_grad();
            int task;
            while ((task = Interlocked.Increment(ref _next) - 1) < count)
            {
                try
                {
                    body(task);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
            }

            Finished.Signal();
        }
    }

#pragma warning disable CA1001 // a lane and its events live as long as the process
    private sealed class Lane
#pragma warning restore CA1001
    {
        private readonly SemaphoreSlim _wake = new(0);
        private readonly ManualResetEventSlim _ready = new();
        private Job? _job;
        private int _threads;

        public Lane(int index)
        {
            new Thread(Loop) { IsBackground = true, Name = $"flexolmo-libtorch-lane-{index + 1}" }.Start();
            _ready.Wait();
        }

        /// <summary>Whether libtorch on this lane reported the thread count the lane set (checked at start, with one thread).</summary>
        public bool Proven { get; private set; }

        public void Give(Job job)
        {
            Volatile.Write(ref _job, job);
            _wake.Release();
        }

        private void Loop()
        {
            _onLane = true;
            _ = get_num_threads(); // libtorch sets this thread's count on its first use; the lane's own comes after
            Proven = SetThreads(1);
            _ready.Set();
            while (true)
            {
                _wake.Wait();
                var job = Volatile.Read(ref _job)!;
                if (job.Threads != _threads)
                {
                    SetThreads(job.Threads);
                }

                job.Work();
            }
        }

        private bool SetThreads(int threads)
        {
            if (_setOpenMpThreads is null)
            {
                return false;
            }

            _setOpenMpThreads(threads);
            _threads = threads;
            return get_num_threads() == threads;
        }
    }
}
