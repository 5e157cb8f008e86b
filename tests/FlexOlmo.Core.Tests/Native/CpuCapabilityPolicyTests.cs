using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Native;

public sealed class CpuCapabilityPolicyTests
{
    [Theory]
    [InlineData(true, true, false, "avx2")]
    [InlineData(true, true, true, null)]
    [InlineData(true, false, false, null)]
    [InlineData(false, true, false, null)]
    public void Choose_PicksAvx2_OnlyForAnAmdCpuWithAvx512TheUserLeftAlone(bool amd, bool avx512, bool userChose, string? expected) =>
        Assert.Equal(expected, CpuCapabilityPolicy.Choose(amd, avx512, userChose));

    [Fact]
    public void Initialize_RunsLibtorchsAvx2Kernels_OnAnAmdCpuWithAvx512()
    {
        TorchRuntime.EnsureInitialized();
        zeros(4).exp().Dispose(); // libtorch reads the variable when it first picks a CPU kernel

        var user = Environment.GetEnvironmentVariable(CpuCapabilityPolicy.Variable);
        if (!string.IsNullOrEmpty(user))
        {
            Assert.Null(CpuCapabilityPolicy.Applied);
            Assert.Equal(user, NativeEnvironment.Get(CpuCapabilityPolicy.Variable));
        }
        else if (OperatingSystem.IsLinux() && CpuCapabilityPolicy.IsAmd() && Avx512F.IsSupported)
        {
            Assert.Equal(CpuCapabilityPolicy.OnAmdWithAvx512, CpuCapabilityPolicy.Applied);
            Assert.Equal("AVX2", LibtorchCapability()); // what libtorch itself reports it runs
        }
        else
        {
            Assert.Null(CpuCapabilityPolicy.Applied);
        }
    }

    /// <summary>libtorch's <c>at::get_cpu_capability()</c>, which returns a std::string (libstdc++'s layout: data pointer, length).</summary>
    private static string LibtorchCapability()
    {
        var library = NativeLibrary.Load(Path.Combine(TorchNative.LibTorchDirectory!, "libtorch_cpu.so"));
        var function = Marshal.GetDelegateForFunctionPointer<ReturnsString>(NativeLibrary.GetExport(library, "_ZN2at18get_cpu_capabilityB5cxx11Ev"));
        var result = Marshal.AllocHGlobal(32); // the std::string it constructs here (its own few bytes are not freed)
        try
        {
            function(result);
            return Marshal.PtrToStringUTF8(Marshal.ReadIntPtr(result), (int)Marshal.ReadInt64(result, 8));
        }
        finally
        {
            Marshal.FreeHGlobal(result);
        }
    }

    /// <summary>A C++ function returning a class by value: the caller passes where to construct it.</summary>
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate IntPtr ReturnsString(IntPtr result);
}
