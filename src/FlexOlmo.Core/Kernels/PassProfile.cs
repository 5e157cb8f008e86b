using System.Diagnostics;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// While <see cref="Enabled"/>, how long the decode kernels' parallel passes over weights take, by the bytes of weight
/// a pass reads: a <see cref="CpuGemv"/> call (q, k and v together, o_proj, lm_head) or one of the two passes of
/// <see cref="CpuExperts"/> (gate and up, then down). For benchmarks: part of a decode step's gap to the streaming bound
/// is how fast its passes stream, and small passes stream slower than large ones (they start cold, wake the other
/// cores and end waiting for the slowest); the rest is the work between them. Off, it costs one read of a flag per call.
/// </summary>
public static class PassProfile
{
    /// <summary>The classes' upper bounds (exclusive) on a pass's weight bytes: 1, 4, 16 and 64 MiB, then the rest.</summary>
    public static IReadOnlyList<long> UpperBytes { get; } = [1L << 20, 4L << 20, 16L << 20, 64L << 20, long.MaxValue];

    private static readonly long[] Passes = new long[UpperBytes.Count];
    private static readonly long[] Bytes = new long[UpperBytes.Count];
    private static readonly long[] Ticks = new long[UpperBytes.Count];
    private static int _enabled;

    /// <summary>Whether passes are recorded; off by default.</summary>
    public static bool Enabled
    {
        get => Volatile.Read(ref _enabled) != 0;
        set => Volatile.Write(ref _enabled, value ? 1 : 0);
    }

    /// <summary>What each class holds since the last <see cref="Reset"/>, smallest class first.</summary>
    public static IReadOnlyList<PassTotals> Snapshot() =>
        Enumerable.Range(0, UpperBytes.Count)
            .Select(c => new PassTotals(UpperBytes[c], Interlocked.Read(ref Passes[c]), Interlocked.Read(ref Bytes[c]), Stopwatch.GetElapsedTime(0, Interlocked.Read(ref Ticks[c]))))
            .ToArray();

    /// <summary>Forgets every pass recorded so far.</summary>
    public static void Reset()
    {
        for (var c = 0; c < UpperBytes.Count; c++)
        {
            Interlocked.Exchange(ref Passes[c], 0);
            Interlocked.Exchange(ref Bytes[c], 0);
            Interlocked.Exchange(ref Ticks[c], 0);
        }
    }

    /// <summary>The timestamp a pass starts at, or 0 when nothing is recorded.</summary>
    internal static long Start() => Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>A pass of <paramref name="bytes"/> of weight that began at <paramref name="start"/> (from <see cref="Start"/>) has ended.</summary>
    internal static void End(long start, long bytes)
    {
        if (start == 0)
        {
            return;
        }

        var ticks = Stopwatch.GetTimestamp() - start;
        var c = 0;
        while (bytes >= UpperBytes[c])
        {
            c++;
        }

        Interlocked.Increment(ref Passes[c]);
        Interlocked.Add(ref Bytes[c], bytes);
        Interlocked.Add(ref Ticks[c], ticks);
    }
}
