using System.Globalization;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// This process's peak resident memory (VmHWM), which Linux lets a process reset to its current resident size by
/// writing 5 to /proc/self/clear_refs: so one benchmark process can measure the peak of each stage on its own.
/// </summary>
internal static class PeakMemory
{
    /// <summary>Resets the peak to the current resident size, and returns that size in bytes.</summary>
    public static long Reset()
    {
        File.WriteAllText("/proc/self/clear_refs", "5");
        return Field("VmRSS:");
    }

    /// <summary>Bytes of the peak resident set since the last <see cref="Reset"/> (or the start).</summary>
    public static long Read() => Field("VmHWM:");

    private static long Field(string name)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(name, StringComparison.Ordinal));
        return long.Parse(line[name.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
