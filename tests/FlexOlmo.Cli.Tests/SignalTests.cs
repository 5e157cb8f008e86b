using System.Diagnostics;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// Real signals sent to the real executable: SIGTERM (what a scheduler or Kubernetes sends, and what Ctrl-C's handler
/// shares) stops a training run after its current step, with a checkpoint that --resume continues from. The child
/// gets a stdin of its own: with the test host's stdin inherited, the child ended by itself within a few steps in
/// the xunit host (never from a shell, with stdin at /dev/null or closed), which is what made earlier attempts at
/// this test fail with "No such process".
/// </summary>
public sealed class SignalTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    [Fact]
    public async Task TrainExpert_Sigterm_StopsAfterTheStepWithACheckpointThatResumes()
    {
        var output = world.At($"o/signal-{Guid.NewGuid():N}");
        string[] args = ["train-expert", "--anchor", world.At("anchor"), "--data", world.At("tokens.bin"), "--name", "e", "--owner", "me", "--out", output,
            "--steps", "100000", "--seq-len", "16", "--batch-tokens", "32", "--router-embedding", world.At("vec.json"), "--checkpoint-every", "0", "--val-fraction", "0"];

        var first = await RunUntilSignalledAsync(args, output, afterSteps: 3);

        Assert.True(first.ExitCode == 130, first.ToString());
        Assert.Contains("SIGTERM: stopping after the current step", first.Error, StringComparison.Ordinal);
        Assert.Contains("checkpoint saved", first.Error, StringComparison.Ordinal);
        var stopped = Steps(output);
        Assert.True(stopped >= 3, $"stopped after {stopped} steps");
        Assert.False(File.Exists(Path.Combine(output, "expert.json")), "an interrupted run must not write a package");

        var second = await RunUntilSignalledAsync([.. args, "--resume"], output, afterSteps: stopped + 2);

        Assert.True(second.ExitCode == 130, second.ToString());
        Assert.True(Steps(output) > stopped, $"the resumed run went on from step {stopped}: {second}");
    }

    private static int Steps(string output) => File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Count(l => l.Length > 0);

    /// <summary>Starts the executable, waits until metrics.jsonl shows <paramref name="afterSteps"/> steps, sends SIGTERM with kill(1) and waits for the exit.</summary>
    private static async Task<(int ExitCode, string Output, string Error)> RunUntilSignalledAsync(string[] args, string output, int afterSteps)
    {
        var info = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "flexolmo")) { RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(output, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        try
        {
            while (!process.HasExited && (!File.Exists(metrics) || Steps(output) < afterSteps))
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "training did not reach the steps within 120 s");
                await Task.Delay(50);
            }

            var pid = process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var kill = new ProcessStartInfo("kill") { RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in new[] { "-s", "TERM", pid })
            {
                kill.ArgumentList.Add(arg);
            }

            using (var killer = Process.Start(kill)!)
            {
                var killError = await killer.StandardError.ReadToEndAsync();
                await killer.WaitForExitAsync();
                if (killer.ExitCode != 0)
                {
                    await process.WaitForExitAsync();
                    Assert.Fail($"kill -s TERM {pid}: exit {killer.ExitCode}, {killError}; the child exited with {process.ExitCode} after {clock.Elapsed}; steps {Steps(output)}\n{await stdout}\n{await stderr}");
                }
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
