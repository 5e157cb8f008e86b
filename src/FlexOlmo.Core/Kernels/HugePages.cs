using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>
/// New tensors large enough that glibc maps them fresh from the kernel every time (above its largest mmap threshold,
/// 32 MB on 64-bit Linux), advised onto transparent huge pages before their first write: the linear layers' outputs of
/// that size, the kernels' and libtorch's (<c>Olmo2Linear</c>), such as a prefill's logits. Without it, where huge
/// pages are only given on request (<c>madvise</c>, as on Debian), every 4 KB page is faulted in on its own.
/// </summary>
/// <remarks>
/// Measured on a 2-core Zen 5 EPYC VM: allocating and filling the benchmark model's fp32 logits over 512 tokens (103 MB)
/// took 228-237 ms on 4 KB pages and 13-15 advised (64 MB: 152 against 14). Only these: libtorch's own huge-page
/// switch (<c>THP_MEM_ALLOC_ENABLE</c>) advises every allocation from 2 MB, and then the 16 MB ones, which glibc
/// otherwise reuses without a fault, took 11.5 ms each instead of 0.2.
/// </remarks>
internal static partial class HugePages
{
    /// <summary>From this size on, glibc always maps an allocation fresh (its mmap threshold grows to at most 32 MB).</summary>
    public const long FreshBytes = 32L << 20;

    private const long PageBytes = 2L << 20;
    private const int AdviseHugePage = 14; // MADV_HUGEPAGE

    /// <summary><c>empty(shape, dtype)</c> on the CPU, advised onto huge pages where it is at least <see cref="FreshBytes"/>.</summary>
    public static Tensor Empty(long[] shape, ScalarType dtype)
    {
        var tensor = empty(shape, dtype);
        var bytes = tensor.numel() * tensor.ElementSize;
        if (bytes >= FreshBytes && OperatingSystem.IsLinux())
        {
            var address = (long)CpuGemv.Address(tensor);
            var first = (address + PageBytes - 1) & ~(PageBytes - 1); // the whole huge pages inside it
            var last = (address + bytes) & ~(PageBytes - 1);
            _ = Advise((nint)first, (nuint)(last - first), AdviseHugePage); // advice only: where it fails, the tensor is the same on small pages
        }

        return tensor;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Advise(nint address, nuint length, int advice);
}
