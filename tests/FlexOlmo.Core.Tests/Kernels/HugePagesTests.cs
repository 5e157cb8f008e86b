using System.Globalization;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class HugePagesTests
{
    [Fact]
    public void Linear_OfAnOutputGlibcMapsFresh_AdvisesItOntoHugePages_AndSmallerOnesNot()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(11);
        var weight = randn([16384, 16]); // [O, K]
        var input = randn([512, 16]); // 512 x 16384 fp32 outputs: 32 MiB, where glibc maps every allocation fresh

        var large = CpuGemv.Linear(input, weight);
        var small = CpuGemv.Linear(input.narrow(0, 0, 4), weight); // 256 KB

        Assert.True(large.numel() * 4 >= HugePages.FreshBytes);
        KernelAssert.Close(large, nn.functional.linear(input, weight), 1e-5); // advice changes where the pages come from, never the values
        Assert.Contains("hg", MappingFlags(CpuGemv.Address(large) + (2L << 20))); // MADV_HUGEPAGE, on the whole huge pages inside it
        Assert.DoesNotContain("hg", MappingFlags(CpuGemv.Address(small)));
    }

    [Fact]
    public void LibtorchLinear_OfAnOutputGlibcMapsFresh_GivesLinearsBits_OnHugePages()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(12);
        var weight = randn([32768, 16]).to(ScalarType.BFloat16); // bf16 beyond 16 rows stays on libtorch
        var input = randn([2, 256, 16]).to(ScalarType.BFloat16); // 512 x 32768 bf16 outputs: 32 MiB

        var actual = Olmo2Linear.Apply(input, weight); // [2, 256, 32768]

        Assert.Equal(new long[] { 2, 256, 32768 }, actual.shape);
        Assert.True(actual.equal(nn.functional.linear(input, weight)).all().item<bool>(), "the product into advised memory differs from linear");
        Assert.Contains("hg", MappingFlags(CpuGemv.Address(actual) + (2L << 20)));
    }

    /// <summary>The VmFlags of the mapping that holds <paramref name="address"/>, from /proc/self/smaps.</summary>
    private static string[] MappingFlags(long address)
    {
        var inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var dash = line.IndexOf('-', StringComparison.Ordinal);
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var end))
            {
                inside = start <= address && address < end; // a mapping's header line
            }
            else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                return line["VmFlags:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            }
        }

        throw new InvalidOperationException($"no mapping in /proc/self/smaps holds 0x{address:x}");
    }
}
