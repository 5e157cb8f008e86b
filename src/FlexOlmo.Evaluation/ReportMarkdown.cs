using System.Globalization;
using System.Text;

namespace FlexOlmo.Evaluation;

/// <summary>PREFIX.md: the perplexity table (best per domain in bold) and, when there is an anchor row, the change against it.</summary>
public static class ReportMarkdown
{
    public static string Render(EvaluationReport report)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# Perplexity of {Path.GetFileName(report.Model.TrimEnd('/'))} by expert mask and domain");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Model `{report.Model}` ({report.Kind}; experts {string.Join(", ", report.Experts)}; top-{report.ExpertsPerToken}); windows of {report.SeqLen} tokens; " +
            $"tokens per domain: {string.Join(", ", report.Domains.Select(d => $"{d} {report.Tokens[d]:N0}"))}. Lower is better; the best per domain is in bold.");
        text.AppendLine();
        AppendTable(text, report, (mask, domain) =>
        {
            var value = report[mask, domain].ToString("0.00", CultureInfo.InvariantCulture);
            return report[mask, domain] == report.Masks.Min(m => report[m, domain]) ? $"**{value}**" : value;
        });
        if (report.Masks.Contains(ExpertMaskSpec.Anchor) && report.Masks.Count > 1)
        {
            text.AppendLine();
            text.AppendLine("Change against the anchor (the public expert alone):");
            text.AppendLine();
            AppendTable(text, report, (mask, domain) => Change(report[mask, domain], report[ExpertMaskSpec.Anchor, domain]));
        }

        if (report.Checks is { Count: > 0 } checks)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"Claims checked ({checks.Count(c => c.Passed)} of {checks.Count} hold):");
            text.AppendLine();
            foreach (var check in checks)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"- {(check.Passed ? "✅" : "❌")} {check.Claim}: {check.Detail}");
            }
        }

        return text.ToString();
    }

    /// <summary>A signed percentage change, "+3.1%" or "-12.0%".</summary>
    public static string Change(double value, double reference) =>
        ((value / reference) - 1).ToString("+0.0%;-0.0%;0.0%", CultureInfo.InvariantCulture);

    private static void AppendTable(StringBuilder text, EvaluationReport report, Func<string, string, string> cell)
    {
        text.AppendLine("| mask | " + string.Join(" | ", report.Domains) + " |");
        text.AppendLine("|---|" + string.Concat(report.Domains.Select(_ => "---:|")));
        foreach (var mask in report.Masks)
        {
            text.AppendLine($"| {mask} | " + string.Join(" | ", report.Domains.Select(d => cell(mask, d))) + " |");
        }
    }
}
