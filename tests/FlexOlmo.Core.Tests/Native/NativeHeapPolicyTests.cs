using FlexOlmo.Core.Native;

namespace FlexOlmo.Core.Tests.Native;

public sealed class NativeHeapPolicyTests
{
    /// <summary>
    /// Whether the policy keeps memory that a process's arenas reuse is measured by the forward benchmark (page faults
    /// and time); which arena a test thread gets, and what other tests left in it, make a fault count here unreliable.
    /// </summary>
    [Fact]
    public void Initialize_SetsTheHeapPolicy_UnlessTheUserChoseMallocSettings()
    {
        TorchRuntime.EnsureInitialized();

        var userSettings = Environment.GetEnvironmentVariables().Keys.OfType<string>().Any(name => name.StartsWith("MALLOC_", StringComparison.Ordinal))
            || (Environment.GetEnvironmentVariable("GLIBC_TUNABLES")?.Contains("glibc.malloc", StringComparison.Ordinal) ?? false);
        Assert.Equal(OperatingSystem.IsLinux() && !userSettings, NativeHeapPolicy.Applied);
    }
}
