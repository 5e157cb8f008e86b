using FlexOlmo.Packages;

namespace FlexOlmo.Evaluation.Tests;

public sealed class FlexOlmoEffectTests
{
    private static readonly Dictionary<string, string> Owners = new() { ["news"] = "news", ["fiction"] = "fiction" };

    private static EvaluationReport Report(Dictionary<string, double[]> rows)
    {
        string[] domains = ["public", "news", "fiction"];
        return new EvaluationReport(
            "/m", "composed", ["public", "news", "fiction"], 3, 8, domains,
            domains.ToDictionary(d => d, _ => 8L),
            rows.Keys.ToList(),
            rows.Keys.ToDictionary(k => k, _ => (IReadOnlyList<string>)["public"]),
            rows.ToDictionary(r => r.Key, r => (IReadOnlyDictionary<string, double>)domains.Select((d, i) => (d, r.Value[i])).ToDictionary(p => p.d, p => p.Item2)),
            DateTimeOffset.UnixEpoch,
            ToolInfo.Current);
    }

    [Fact]
    public void Check_ReportShowingTheEffect_PassesEveryClaim()
    {
        var report = Report(new()
        {
            ["composed"] = [50, 40, 60],
            ["anchor"] = [50, 48, 70],
            ["only:news"] = [51, 39, 69],
            ["only:fiction"] = [51, 47, 58],
            ["without:news"] = [50, 47, 60],
            ["without:fiction"] = [50, 40, 69],
        });

        var checks = FlexOlmoEffect.Check(report, Owners);

        Assert.Equal(6, checks.Count);
        Assert.All(checks, c => Assert.True(c.Passed, $"{c.Claim}: {c.Detail}"));
    }

    [Fact]
    public void Check_ExpertThatHurtsOtherDomainsMost_FailsOnlyThatClaim()
    {
        var report = Report(new()
        {
            ["composed"] = [50, 40, 60],
            ["anchor"] = [50, 48, 70],
            ["only:news"] = [51, 39, 69],
            ["only:fiction"] = [51, 47, 58],
            ["without:news"] = [50, 41, 70], // opting news out costs fiction 16.7%, news only 2.5%
            ["without:fiction"] = [50, 40, 69],
        });

        var failed = Assert.Single(FlexOlmoEffect.Check(report, Owners), c => !c.Passed);

        Assert.Equal("opting news out costs most on news", failed.Claim);
        Assert.Contains("fiction +16.7%", failed.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_ComposedWorseThanAnchorAndRoutingMissed_BothFail()
    {
        var report = Report(new()
        {
            ["composed"] = [50, 49, 60],
            ["anchor"] = [50, 48, 70],
            ["only:news"] = [51, 40, 69],
            ["only:fiction"] = [51, 47, 58],
            ["without:news"] = [50, 55, 60],
            ["without:fiction"] = [50, 49, 69],
        });

        var failed = FlexOlmoEffect.Check(report, Owners).Where(c => !c.Passed).Select(c => c.Claim).ToList();

        Assert.Equal(["composed beats the anchor on news", "routing finds news on news: composed within 10% of only:news"], failed);
    }

    [Fact]
    public void Check_MissingRow_SaysWhichMaskIsMissing()
    {
        var report = Report(new() { ["composed"] = [1, 1, 1], ["anchor"] = [1, 1, 1] });

        var error = Assert.Throws<EvaluationException>(() => FlexOlmoEffect.Check(report, Owners));

        Assert.Contains("without:news", error.Message, StringComparison.Ordinal);
    }
}
