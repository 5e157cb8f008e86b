using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace FlexOlmo.Support;

/// <summary>
/// A real Azurite blob server for tests: installed from npm into a cache folder outside the repository when missing
/// (azurite@3.37.0), started on a free loopback port with its own data folder, stopped by its process id.
/// Restarting reuses the port and data folder, so uncommitted blocks survive as they would on a real service.
/// </summary>
public sealed class AzuriteServer : IDisposable
{
    public const string Version = "3.37.0";
    public const string Account = "devstoreaccount1";
    private const string Key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string _executable;
    private readonly TempDirectory _data = new("azurite");
    private Process? _process;

    public AzuriteServer()
    {
        _executable = EnsureInstalled();
        Port = FreePort();
        Start();
    }

    public int Port { get; }

    public string BlobEndpoint => $"http://127.0.0.1:{Port}/{Account}";

    /// <summary>Azurite's well-known development account, on this server's port.</summary>
    public string ConnectionString => $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={Key};BlobEndpoint={BlobEndpoint};";

    /// <summary>A registry URI for a container (and optional prefix) on this server.</summary>
    public string RegistryUri(string container, string? prefix = null) => $"{BlobEndpoint}/{container}" + (prefix is null ? string.Empty : "/" + prefix);

    public int? ProcessId => _process?.Id;

    /// <summary>Starts the server (the constructor already has); a server that is running is left as it is, never started twice.</summary>
    public void Start()
    {
        if (_process is { HasExited: false })
        {
            return; // a second process would lose the port to the first and leave it running, unstopped
        }

        var info = new ProcessStartInfo(_executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--location", _data.Path, "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose" })
        {
            info.ArgumentList.Add(argument);
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException("could not start azurite");
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"azurite exited with code {_process.ExitCode} on port {Port}");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(100);
            }
        }

        throw new TimeoutException($"azurite did not listen on port {Port} within 60 s");
    }

    /// <summary>
    /// Stops the server by its process id: SIGTERM first, so Azurite saves its metadata as a real service keeps its
    /// state, then SIGKILL of the whole tree if it has not exited within 10 s.
    /// </summary>
    public void Stop()
    {
        if (_process is null)
        {
            return;
        }

        try
        {
            if (!_process.HasExited)
            {
                _ = Kill(_process.Id, 15);
                if (!_process.WaitForExit(10_000))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(10_000);
                }
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        _process = null;
    }

    public void Dispose()
    {
        Stop();
        _data.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>npm install azurite into $FLEXOLMO_AZURITE_HOME or ~/.cache/flexolmo/azurite/VERSION, once (a file lock serialises parallel test runs).</summary>
    private static string EnsureInstalled()
    {
        var home = Environment.GetEnvironmentVariable("FLEXOLMO_AZURITE_HOME") is { Length: > 0 } custom
            ? custom
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "flexolmo", "azurite", Version);
        var executable = Path.Combine(home, "node_modules", ".bin", "azurite-blob");
        var marker = Path.Combine(home, "installed.ok");
        if (File.Exists(marker) && File.Exists(executable))
        {
            return executable;
        }

        Directory.CreateDirectory(home);
        using var lockFile = AcquireLock(Path.Combine(home, "install.lock"));
        if (File.Exists(marker) && File.Exists(executable))
        {
            return executable;
        }

        var info = new ProcessStartInfo("npm") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "install", "--prefix", home, $"azurite@{Version}", "--no-audit", "--no-fund", "--loglevel", "error" })
        {
            info.ArgumentList.Add(argument);
        }

        using var npm = Process.Start(info) ?? throw new InvalidOperationException("could not run npm (install Node.js and npm)");
        var error = npm.StandardError.ReadToEndAsync();
        npm.StandardOutput.ReadToEnd();
        if (!npm.WaitForExit(600_000) || npm.ExitCode != 0)
        {
            throw new InvalidOperationException($"npm install azurite@{Version} failed: {error.Result}");
        }

        File.WriteAllText(marker, DateTime.UtcNow.ToString("O"));
        return executable;
    }

    private static FileStream AcquireLock(string path)
    {
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(500);
            }
        }
    }
}
