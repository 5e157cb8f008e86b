using FlexOlmo.Testing;

namespace FlexOlmo.Cli.Tests;

public sealed class CommandLineTests
{
    [Fact]
    public async Task Help_Root_ListsEveryUserJob()
    {
        var run = await CliRun.RunAsync("--help");

        Assert.Equal(0, run.ExitCode);
        foreach (var command in new[] { "demo", "train-expert", "publish", "compose", "serve", "eval", "pretrain", "prepare-anchor", "keys", "revoke", "generate" })
        {
            Assert.Contains(command, run.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Eval_WithoutRequiredOptions_NamesThem()
    {
        var run = await CliRun.RunAsync("eval");

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("--model", run.Error, StringComparison.Ordinal);
        Assert.Contains("--data", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_MissingFolder_ExitsOneWithOneLineNamingIt()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"flexolmo-missing-{Guid.NewGuid():N}");

        var run = await CliRun.RunAsync("inspect", missing);

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error: ", run.Error, StringComparison.Ordinal);
        Assert.Contains(missing, run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_ForeignNonEmptyFolder_IsLeftUntouched()
    {
        using var folder = new TempDirectory("demo-foreign");
        var precious = Path.Combine(folder.Path, "thesis.txt");
        File.WriteAllText(precious, "do not delete");

        var run = await CliRun.RunAsync("demo", "--quick", "--work", folder.Path);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("no demo made it", run.Error, StringComparison.Ordinal);
        Assert.Equal("do not delete", File.ReadAllText(precious));
    }

    [Fact]
    public async Task Keys_Create_WritesKeyPairAndPrintsFingerprint()
    {
        using var folder = new TempDirectory("cli-keys");
        var key = Path.Combine(folder.Path, "owner.key");

        var run = await CliRun.RunAsync("keys", "create", "--out", key);

        Assert.Equal(0, run.ExitCode);
        Assert.True(File.Exists(key) && File.Exists(key + ".pub"), run.ToString());
        Assert.Contains("fingerprint sha256:", run.Output, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        }
    }
}
