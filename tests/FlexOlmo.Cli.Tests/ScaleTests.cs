using System.Diagnostics;
using System.Globalization;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// The 1B class on this kind of machine: a random olmo2-1b (3 GB in bf16) written and run by the real executable.
/// Slow (about a minute and 3 GB of temporary disk), so outside the default run: <c>--filter Category=Slow</c>.
/// </summary>
[Trait("Category", "Slow")] // excluded by the README's filter Category!=Slow
public sealed class ScaleTests
{
    [Fact]
    public async Task Olmo2_1b_RandomModel_Generates_HoldingItsBytesOnce()
    {
        using var folder = new TempDirectory("scale-1b");
        var model = Path.Combine(folder.Path, "olmo2-1b");
        var init = await CliRun.RunAsync("init-model", "--preset", "olmo2-1b", "--dtype", "bfloat16", "--out", model);
        Assert.True(init.ExitCode == 0, init.ToString());
        var bytes = Directory.GetFiles(model, "*.safetensors").Sum(f => new FileInfo(f).Length);

        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "flexolmo")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "generate", "--model", model, "--prompt-ids", "1,2,3", "--max-new-tokens", "4" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        long peak = 0;
        while (!process.HasExited)
        {
            peak = Math.Max(peak, PeakResidentBytes(process.Id));
            await Task.Delay(10);
        }

        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{await output}\n{await error}");
        Assert.True(peak > 0, "the peak resident memory could not be read");
        Assert.True(peak <= 1.25 * bytes, $"peak resident memory {peak / 1e9:0.00} GB for a {bytes / 1e9:0.00} GB model: the weights are held more than once");
    }

    /// <summary>VmHWM of a running process (its peak resident memory so far), or 0 once it is gone.</summary>
    private static long PeakResidentBytes(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }
}
