using FlexOlmo.Evaluation.Study;

namespace FlexOlmo.Evaluation.Tests;

public sealed class StudyOrderingsTests
{
    [Fact]
    public void Check_PaperOrderings_HoldWhenTheAveragesFollowThem()
    {
        var checks = StudyOrderings.Check(Rows(flexolmo: 10, btm: 11, soup: 12, noBias: 10.5, noInit: 11, noCoordination: 13, rt: 9.9, ks: [14, 11, 10.5, 10.4]));

        Assert.Equal(4, checks.Count);
        Assert.All(checks, c => Assert.True(c.Passed, $"{c.Claim}: {c.Detail}"));
        Assert.Equal("FlexOlmo 10.00 < BTM 11.00 < soup 12.00", checks[0].Detail);
    }

    [Fact]
    public void Check_OrderingsThatFail_SayWhereAndStayFailed()
    {
        var checks = StudyOrderings.Check(Rows(flexolmo: 11.5, btm: 11, soup: 12, noBias: 11.5, noInit: 11, noCoordination: 13, rt: 11.6, ks: [14, 13, 12, 11]));

        Assert.False(checks[0].Passed);
        Assert.Equal("FlexOlmo 11.50 NOT < BTM 11.00 < soup 12.00", checks[0].Detail);
        Assert.False(checks[1].Passed); // equal is not better: no bias must be strictly worse
        Assert.Contains("NOT < no bias", checks[1].Detail, StringComparison.Ordinal);
        Assert.False(checks[2].Passed);
        Assert.False(checks[3].Passed); // the last step in k still gains as much as the second
    }

    private static List<StudyRow> Rows(double flexolmo, double btm, double soup, double noBias, double noInit, double noCoordination, double rt, double[] ks)
    {
        static StudyRow Row(string key, string group, double value) => new(key, group, key, "test", new Dictionary<string, double> { ["a"] = value, ["b"] = value });
        var rows = new List<StudyRow>
        {
            Row(StudyOrderings.FlexOlmo, "flexolmo", flexolmo),
            Row(StudyOrderings.Btm, "baseline", btm),
            Row(StudyOrderings.SoupUniform, "baseline", soup),
            Row(StudyOrderings.SoupWeighted, "baseline", soup + 1),
            Row(StudyOrderings.NoBias, "ablation", noBias),
            Row(StudyOrderings.NoInit, "ablation", noInit),
            Row(StudyOrderings.NoCoordination, "ablation", noCoordination),
            Row(StudyOrderings.RouterTuned, "flexolmo", rt),
        };
        rows.AddRange(ks.Select((v, i) => Row(StudyOrderings.K(i + 1), "k", v)));
        return rows;
    }
}
