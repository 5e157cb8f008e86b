using System.Runtime.InteropServices;

namespace FlexOlmo.Core.Native;

/// <summary>
/// How glibc's malloc, which libtorch's CPU tensors come from, hands memory back to the system. Set once, when the
/// native libraries load: blocks below 32 MB come from malloc's heaps, and a heap keeps up to 512 MB free at its top
/// instead of returning it. A user's own malloc settings (<c>MALLOC_*_</c> variables or <c>GLIBC_TUNABLES</c>) win.
/// </summary>
/// <remarks>
/// glibc's defaults adapt: a block above the mmap threshold is mapped fresh and unmapped when freed, the threshold
/// rises to the largest such block freed (a few MB here), and a heap whose free top passes twice that is trimmed. A
/// forward's activations are freed and allocated again every layer, so they kept going back to the system and coming
/// back as page faults. Timed part by part in 512-token bf16 forwards of the benchmark model on this project's 2-core
/// VM, where a fault costs about 10 us: the experts' silu outputs alone faulted 5,900 pages a forward, and took a
/// median of 77-253 ms a forward in two runs against 27 ms with the policy, which left no faults there. Keeping the
/// memory trades a process's resident size after its largest pass (it stays near that pass's peak) for not faulting
/// the same memory in again; the peak itself is unchanged.
/// </remarks>
internal static partial class NativeHeapPolicy
{
    /// <summary>Blocks of this size and up are mapped on their own (glibc's largest automatic threshold).</summary>
    public const int MmapThresholdBytes = 32 << 20;

    /// <summary>Free memory a heap keeps at its top before it gives any back.</summary>
    public const int TrimThresholdBytes = 512 << 20;

    private const int TrimThreshold = -1; // M_TRIM_THRESHOLD in malloc.h
    private const int MmapThreshold = -3; // M_MMAP_THRESHOLD in malloc.h

    /// <summary>Whether <see cref="Apply"/> set the policy in this process.</summary>
    public static bool Applied { get; private set; }

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux() || UserChoseMallocSettings())
        {
            return;
        }

        try
        {
            // mallopt returns 0 where a value is refused (a build with other limits): glibc's defaults stay.
            Applied = SetOption(MmapThreshold, MmapThresholdBytes) == 1 && SetOption(TrimThreshold, TrimThresholdBytes) == 1;
        }
        catch (EntryPointNotFoundException)
        {
            // Another libc (musl has no mallopt): its own allocator's behaviour stays.
        }
    }

    private static bool UserChoseMallocSettings() =>
        Environment.GetEnvironmentVariables().Keys.OfType<string>().Any(name => name.StartsWith("MALLOC_", StringComparison.Ordinal))
        || (Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("glibc.malloc", StringComparison.Ordinal) ?? false);

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int SetOption(int option, int value);
}
