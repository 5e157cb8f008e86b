using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using TorchSharp;

namespace FlexOlmo.Core.Native;

/// <summary>
/// Loads libtorch and TorchSharp's native bridge before the first tensor is made.
/// </summary>
/// <remarks>
/// Two things TorchSharp's own loader cannot do: use the libtorch of an existing PyTorch install (how a user
/// gets CUDA without a 2 GB download), and run on hosts whose libstdc++ lacks GLIBCXX_3.4.32 (Debian 12,
/// Ubuntu 22.04). For the second, a copy of libLibTorchSharp.so with that need marked weak is written to a
/// cache folder (never the NuGet cache or the app folder) and TorchSharp is pointed at it.
/// </remarks>
public static partial class TorchNative
{
    /// <summary>Environment variable naming a libtorch folder (for example a PyTorch install's torch/lib).</summary>
    public const string LibTorchEnvironmentVariable = "FLEXOLMO_LIBTORCH";

    private const string BridgeFileName = "libLibTorchSharp.so";
    private static readonly Lock Gate = new();
    private static IntPtr _bridgeHandle;
    private static string? _libTorchDirectory;

    /// <summary>The folder libtorch was loaded from, once <see cref="Initialize"/> has run.</summary>
    public static string? LibTorchDirectory => _libTorchDirectory;

    /// <summary>The libLibTorchSharp.so actually loaded (the app's own or a patched copy).</summary>
    public static string? BridgePath { get; private set; }

    /// <summary>
    /// Loads the native libraries once per process. Later calls with another folder are an error; later calls
    /// with the same folder (or none) do nothing.
    /// </summary>
    /// <param name="libTorchDirectory">A libtorch folder, or null for <see cref="LibTorchEnvironmentVariable"/>, then the bundled one.</param>
    /// <param name="log">Receives one line per notable step (a patch applied, a foreign libtorch used).</param>
    public static void Initialize(string? libTorchDirectory = null, Action<string>? log = null)
    {
        lock (Gate)
        {
            var appDirectory = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
            var requested = libTorchDirectory ?? NullIfEmpty(Environment.GetEnvironmentVariable(LibTorchEnvironmentVariable));
            var directory = Path.GetFullPath(requested ?? appDirectory);
            if (_libTorchDirectory is not null)
            {
                if (requested is not null && !PathsEqual(directory, _libTorchDirectory))
                {
                    throw new NativeLibraryException(
                        $"libtorch is already loaded from {_libTorchDirectory}; cannot switch to {directory} in the same process.");
                }

                return;
            }

            if (!OperatingSystem.IsLinux())
            {
                // Other platforms: TorchSharp's own loader knows them; only Linux needs the work below.
                _libTorchDirectory = directory;
                return;
            }

            OpenMpWaitPolicy.Apply();
            NativeHeapPolicy.Apply();
            CpuCapabilityPolicy.Apply();
            PreloadLibTorch(directory, requested is not null, log);
            var bridge = Path.Combine(appDirectory, BridgeFileName);
            if (!File.Exists(bridge))
            {
                throw new NativeLibraryException(
                    $"{bridge} is missing: the TorchSharp package was not deployed with this program. Rebuild or reinstall flexolmo.");
            }

            _bridgeHandle = LoadBridge(bridge, log);
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, ResolveBridge);
            AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
                assembly == typeof(torch).Assembly ? ResolveBridge(name, assembly, null) : IntPtr.Zero;
            _libTorchDirectory = directory;
        }
    }

    private static IntPtr ResolveBridge(string name, Assembly assembly, DllImportSearchPath? searchPath) =>
        name is "LibTorchSharp" or "libLibTorchSharp" or BridgeFileName ? _bridgeHandle : IntPtr.Zero;

    private static void PreloadLibTorch(string directory, bool userChosen, Action<string>? log)
    {
        if (!File.Exists(Path.Combine(directory, "libtorch_cpu.so")))
        {
            var hint = userChosen
                ? $"Point --libtorch or {LibTorchEnvironmentVariable} at a folder holding libtorch_cpu.so, such as the output of " +
                  "python3 -c \"import torch,os; print(os.path.dirname(torch.__file__)+'/lib')\"."
                : "Rebuild: the libtorch-cpu-linux-x64 package was not copied next to the program.";
            throw new NativeLibraryException($"No libtorch in {directory} (libtorch_cpu.so not found). {hint}");
        }

        // Order matters: each library's needs must already be in the process when it is opened.
        foreach (var name in new[] { "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so" })
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path))
            {
                continue;
            }

            try
            {
                NativeLibrary.Load(path);
            }
            catch (DllNotFoundException e)
            {
                throw new NativeLibraryException($"Could not load {path}: {FirstLine(e.Message)}");
            }
        }

        if (userChosen)
        {
            log?.Invoke($"libtorch: using {directory}");
        }
    }

    private static IntPtr LoadBridge(string bridge, Action<string>? log)
    {
        var path = bridge;
        var weakened = new List<string>();
        for (var attempt = 0; attempt < 4; attempt++)
        {
            try
            {
                var handle = NativeLibrary.Load(path);
                BridgePath = path;
                return handle;
            }
            catch (DllNotFoundException e)
            {
                var missing = MissingVersionPattern().Match(e.Message);
                if (!missing.Success)
                {
                    throw new NativeLibraryException($"Could not load {path}: {FirstLine(e.Message)}");
                }

                weakened.Add(missing.Groups[1].Value);
                path = WritePatchedCopy(bridge, weakened, log);
            }
        }

        throw new NativeLibraryException($"Could not load {bridge}: the system libstdc++ lacks {string.Join(", ", weakened)}.");
    }

    /// <summary>Writes (once) a copy of the bridge with the given version needs marked weak, and returns its path.</summary>
    private static string WritePatchedCopy(string bridge, IReadOnlyList<string> versions, Action<string>? log)
    {
        var original = File.ReadAllBytes(bridge);
        var key = Convert.ToHexStringLower(SHA256.HashData(original))[..16] + "-" + string.Join("-", versions);
        var folder = Path.Combine(CacheRoot(), "native", key);
        var target = Path.Combine(folder, BridgeFileName);
        if (File.Exists(target))
        {
            return target;
        }

        var patched = original;
        foreach (var version in versions)
        {
            patched = ElfVersionNeedPatcher.MarkVersionWeak(patched, version, bridge);
        }

        Directory.CreateDirectory(folder);
        var temporary = target + $".{Environment.ProcessId}.tmp";
        File.WriteAllBytes(temporary, patched);
        File.Move(temporary, target, overwrite: true);
        log?.Invoke(
            $"native: this system's libstdc++ lacks {string.Join(", ", versions)}; wrote a copy of {BridgeFileName} " +
            $"with that need marked weak (only a link-time marker uses it) to {target}");
        return target;
    }

    /// <summary>The per-user cache folder of FlexOlmo.NET ($XDG_CACHE_HOME/flexolmo or ~/.cache/flexolmo).</summary>
    public static string CacheRoot()
    {
        var xdg = NullIfEmpty(Environment.GetEnvironmentVariable("XDG_CACHE_HOME"));
        var root = xdg ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "flexolmo");
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static bool PathsEqual(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(a), Path.TrimEndingDirectorySeparator(b), StringComparison.Ordinal);

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    [GeneratedRegex(@"version `(GLIBCXX_[0-9.]+)' not found")]
    private static partial Regex MissingVersionPattern();
}
