using FlexOlmo.Evaluation;
using FlexOlmo.Testing;

namespace FlexOlmo.Cli.Tests;

public sealed class EvalCommandTests(TrainingFixture fixture) : IClassFixture<TrainingFixture>
{
    [Fact]
    public async Task Eval_AnchorFolder_PrintsTableAndWritesThreeReports()
    {
        using var folder = new TempDirectory("cli-eval");
        var prefix = Path.Combine(folder.Path, "report");

        var run = await CliRun.RunAsync(
            "eval", "--model", fixture.AnchorFolder, "--data", $"public={fixture.PublicData}", $"counting={fixture.CountingData}",
            "--seq-len", "32", "--max-tokens", "256", "--out", prefix, "--token-cache", fixture.TokenCache);

        Assert.True(run.ExitCode == 0, run.ToString());
        var report = EvaluationReport.Load(prefix + ".json");
        Assert.Equal(["anchor"], report.Masks);
        Assert.Equal(["public", "counting"], report.Domains);
        Assert.Matches(@"anchor\s+\d+\.\d\d\s+\d+\.\d\d", run.Output);
        Assert.True(File.Exists(prefix + ".md") && File.Exists(prefix + ".html"));
        Assert.Contains("[2/2] anchor on counting: perplexity", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Eval_MaskNamingAnExpertTheModelLacks_ExitsOneNamingTheMask()
    {
        using var folder = new TempDirectory("cli-eval-mask");

        var run = await CliRun.RunAsync(
            "eval", "--model", fixture.AnchorFolder, "--data", $"public={fixture.PublicData}", "--masks", "only:news", "--out", Path.Combine(folder.Path, "r"),
            "--token-cache", fixture.TokenCache);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: mask 'only:news': Unknown expert 'news'", run.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(folder.Path, "r.json")));
    }

    [Fact]
    public async Task Eval_Json_PrintsTheReport()
    {
        using var folder = new TempDirectory("cli-eval-json");

        var run = await CliRun.RunAsync(
            "eval", "--model", fixture.ModelFolder, "--data", $"chemistry={fixture.ChemistryData}", "--seq-len", "32", "--max-tokens", "64",
            "--out", Path.Combine(folder.Path, "r"), "--json", "--token-cache", fixture.TokenCache);

        Assert.True(run.ExitCode == 0, run.ToString());
        using var json = System.Text.Json.JsonDocument.Parse(run.Output);
        Assert.Equal(64, json.RootElement.GetProperty("tokens").GetProperty("chemistry").GetInt64());
        Assert.True(json.RootElement.GetProperty("perplexity").GetProperty("anchor").GetProperty("chemistry").GetDouble() > 1);
    }
}
