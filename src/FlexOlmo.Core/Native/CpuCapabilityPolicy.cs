using System.Runtime.Intrinsics.X86;

namespace FlexOlmo.Core.Native;

/// <summary>
/// Which of libtorch's builds of its CPU kernels runs (<c>ATEN_CPU_CAPABILITY</c>): on AMD CPUs with AVX-512, the
/// AVX2 one. Set once, before libtorch comes into the process; a user's own <c>ATEN_CPU_CAPABILITY</c> wins.
/// </summary>
/// <remarks>
/// <para>
/// libtorch's AVX-512 exponential (Sleef's, behind exp, sigmoid, silu, tanh, softmax and their gradients) ends with a
/// masked load of a constant that only overflowing lanes take, so its mask is almost always empty (<c>perf</c> put 90% of
/// the function's time just after it). What we measured fits such a load taking a microcode assist on AMD's Zen cores
/// whenever its page is not in the core's TLB, where nothing else reads that page to put it there. On this project's
/// 2-core Zen 5 EPYC VM, silu of a bf16 [130, 2816] tensor on one thread:
/// 0.39-0.55 ns an element in some processes, 11.3-12.9 in others, every op built on that exponential alike. Reading
/// one byte of the constant's page made a slow process fast (12.4 to 0.53), but not for good: processes that had filled
/// a few GB first were slow every time, and after a 2 s sleep a fast one took 2.0 ns. A 512-token bf16 forward of the
/// benchmark model then took 0.63 s instead of 0.46-0.51. The AVX2 build has no masked loads there: 0.7-0.9 ns an
/// element every time, and eight forward benchmarks alternating AVX2 with AVX-512 took 0.466-0.495 s against
/// 0.463-0.633. The products are oneDNN's and MKL's, which choose their own instructions, and the golden tests pass
/// on both builds.
/// </para>
/// <para>
/// Only where measured, on AMD: elsewhere libtorch keeps its own choice.
/// </para>
/// </remarks>
internal static class CpuCapabilityPolicy
{
    /// <summary>The variable libtorch reads once, when it first picks a CPU kernel.</summary>
    public const string Variable = "ATEN_CPU_CAPABILITY";

    /// <summary>The build used on AMD CPUs with AVX-512.</summary>
    public const string OnAmdWithAvx512 = "avx2";

    /// <summary>What <see cref="Apply"/> set, or null where it left libtorch to choose.</summary>
    public static string? Applied { get; private set; }

    public static void Apply()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the native environment is set through libc, as on the other policies' platform
        }

        var choice = Choose(IsAmd(), Avx512F.IsSupported, NativeEnvironment.IsSet(Variable));
        if (choice is not null && NativeEnvironment.SetUnlessPresent(Variable, choice))
        {
            Applied = choice;
        }
    }

    /// <summary>The capability to set for this CPU, or null to leave libtorch's own choice (or the user's).</summary>
    internal static string? Choose(bool amd, bool avx512, bool userChose) => amd && avx512 && !userChose ? OnAmdWithAvx512 : null;

    /// <summary>Whether the CPU reports itself as AMD's (CPUID leaf 0: "AuthenticAMD" in EBX, EDX, ECX).</summary>
    internal static bool IsAmd()
    {
        if (!X86Base.IsSupported)
        {
            return false;
        }

        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        Span<byte> vendor = stackalloc byte[12];
        BitConverter.TryWriteBytes(vendor, ebx);
        BitConverter.TryWriteBytes(vendor[4..], edx);
        BitConverter.TryWriteBytes(vendor[8..], ecx);
        return vendor.SequenceEqual("AuthenticAMD"u8);
    }
}
