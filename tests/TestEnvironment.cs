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
