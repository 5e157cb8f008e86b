using System.Runtime.CompilerServices;

namespace FlexOlmo.Tests;

/// <summary>
/// Compiled into every test assembly: gives the test process its own FLEXOLMO_HOME (default registry, remembered
/// revocations), so tests never read or write the developer's ~/.flexolmo and never see each other's revocations
/// across runs.
/// </summary>
internal static class TestEnvironment
{
#pragma warning disable CA2255 // a test assembly is an application: set its environment before any test runs
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void IsolateFlexOlmoHome()
    {
        var home = Path.Combine(Path.GetTempPath(), $"flexolmo-home-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(home);
        Environment.SetEnvironmentVariable(Formats.FlexOlmoHome.Variable, home);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(home, recursive: true);
            }
            catch (IOException)
            {
            }
        };
    }
}

/// <summary>
/// The traits that keep tests out of the default run. The README's and .ci/run's filter,
/// <c>Category!=Slow&amp;Category!=Gpu</c>, matches these exact strings, so tests name them through here, never as literals.
/// </summary>
internal static class TestCategory
{
    public const string Name = "Category";

    /// <summary>Longer than the default run allows (minutes, or gigabytes of temporary disk).</summary>
    public const string Slow = "Slow";

    /// <summary>Needs a CUDA device and a CUDA libtorch (FLEXOLMO_LIBTORCH); fails without one.</summary>
    public const string Gpu = "Gpu";
}
