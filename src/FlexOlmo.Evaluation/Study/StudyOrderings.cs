using System.Globalization;

namespace FlexOlmo.Evaluation.Study;

/// <summary>
/// The paper's orderings (method §7), checked on average held-out perplexity (lower is better):
/// FlexOlmo &lt; BTM &lt; soup; full &lt; no bias &lt; no init &lt; no coordination; RT &lt;= no RT; and quality levels
/// off in k. Each says what it compared, so a reader sees by how much an ordering holds or fails.
/// </summary>
public static class StudyOrderings
{
    public const string FlexOlmo = "flexolmo";
    public const string Btm = "btm";
    public const string SoupUniform = "soup-uniform";
    public const string SoupWeighted = "soup-weighted";
    public const string RouterTuned = "rt";
    public const string NoBias = "no-bias";
    public const string NoInit = "no-init";
    public const string NoCoordination = "no-coordination";

    /// <summary>The last step in k levels off when it gains at most this share of the first step's gain (or nothing).</summary>
    public const double LevelOffShare = 1.0 / 3;

    /// <summary>The key of the row composed with top-<paramref name="k"/> routing.</summary>
    public static string K(int k) => $"k{k}";

    public static IReadOnlyList<EffectCheck> Check(IReadOnlyList<StudyRow> rows)
    {
        double Avg(string key) => rows.First(r => r.Key == key).Average;
        var soup = Math.Min(Avg(SoupUniform), Avg(SoupWeighted));
        var checks = new List<EffectCheck>
        {
            Chain("FlexOlmo < BTM < soup (the better of the two soups)", [("FlexOlmo", Avg(FlexOlmo)), ("BTM", Avg(Btm)), ("soup", soup)], strict: true),
            Chain("full < no bias < no init < no coordination", [("full", Avg(FlexOlmo)), ("no bias", Avg(NoBias)), ("no init", Avg(NoInit)), ("no coordination", Avg(NoCoordination))], strict: true),
            Chain("RT <= no RT", [("RT", Avg(RouterTuned)), ("no RT", Avg(FlexOlmo))], strict: false),
        };
        var ks = rows.Where(r => r.Group == "k").Select(r => (K: int.Parse(r.Key[1..], CultureInfo.InvariantCulture), r.Average)).OrderBy(p => p.K).ToList();
        if (ks.Count >= 3)
        {
            var first = ks[0].Average - ks[1].Average;
            var last = ks[^2].Average - ks[^1].Average;
            var holds = last <= 0 || (first > 0 && last <= LevelOffShare * first);
            var curve = string.Join(", ", ks.Select(p => FormattableString.Invariant($"k={p.K} {p.Average:0.00}")));
            checks.Add(new EffectCheck(
                "quality levels off in k (the last step gains at most a third of the first)",
                holds,
                FormattableString.Invariant($"{curve}; k={ks[0].K}->{ks[1].K} gains {first:0.000}, k={ks[^2].K}->{ks[^1].K} gains {last:0.000}")));
        }

        return checks;
    }

    private static EffectCheck Chain(string claim, IReadOnlyList<(string Name, double Value)> chain, bool strict)
    {
        var pairs = chain.Zip(chain.Skip(1)).ToList();
        var failed = pairs.Where(p => strict ? !(p.First.Value < p.Second.Value) : !(p.First.Value <= p.Second.Value)).ToList();
        var detail = new System.Text.StringBuilder(FormattableString.Invariant($"{chain[0].Name} {chain[0].Value:0.00}"));
        foreach (var pair in pairs)
        {
            detail.Append(FormattableString.Invariant($" {(failed.Contains(pair) ? "NOT " : string.Empty)}{(strict ? "<" : "<=")} {pair.Second.Name} {pair.Second.Value:0.00}"));
        }

        return new EffectCheck(claim, failed.Count == 0, detail.ToString());
    }
}
