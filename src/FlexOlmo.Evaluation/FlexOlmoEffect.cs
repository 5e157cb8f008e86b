using System.Globalization;

namespace FlexOlmo.Evaluation;

/// <summary>One claim about a report and whether it held.</summary>
public sealed record EffectCheck(string Claim, bool Passed, string Detail);

/// <summary>
/// The behaviour FlexOlmo promises (method §7), checked on a report of a composed model: each expert helps on its
/// owner's domain, opting an expert out costs most on that expert's own domain, and routing finds the right
/// expert without being told the domain.
/// </summary>
public static class FlexOlmoEffect
{
    /// <summary>How far composed may trail only:X on X's domain.</summary>
    public const double RoutingTolerance = 0.10;

    /// <param name="report">A report with the anchor, composed, only:X and without:X rows.</param>
    /// <param name="domainOf">Each expert's own domain, by expert name.</param>
    public static IReadOnlyList<EffectCheck> Check(EvaluationReport report, IReadOnlyDictionary<string, string> domainOf)
    {
        var checks = new List<EffectCheck>();
        foreach (var (expert, domain) in domainOf)
        {
            var composed = report[ExpertMaskSpec.Composed, domain];
            var anchor = report[ExpertMaskSpec.Anchor, domain];
            checks.Add(new EffectCheck(
                $"composed beats the anchor on {domain}",
                composed < anchor,
                Invariant($"{composed:0.00} vs {anchor:0.00} ({ReportMarkdown.Change(composed, anchor)})")));

            var without = $"without:{expert}";
            var costs = report.Domains.ToDictionary(d => d, d => (report[without, d] / report[ExpertMaskSpec.Composed, d]) - 1);
            var worst = costs.MaxBy(c => c.Value).Key;
            checks.Add(new EffectCheck(
                $"opting {expert} out costs most on {domain}",
                worst == domain,
                string.Join(", ", costs.Select(c => Invariant($"{c.Key} {c.Value:+0.0%;-0.0%;0.0%}")))));

            var only = report[$"only:{expert}", domain];
            checks.Add(new EffectCheck(
                $"routing finds {expert} on {domain}: composed within {RoutingTolerance:0%} of only:{expert}",
                composed <= only * (1 + RoutingTolerance),
                Invariant($"{composed:0.00} vs {only:0.00} ({ReportMarkdown.Change(composed, only)})")));
        }

        return checks;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
