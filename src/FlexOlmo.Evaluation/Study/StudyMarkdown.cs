using System.Globalization;
using System.Text;

namespace FlexOlmo.Evaluation.Study;

/// <summary>REPORT.md: the table of every model's held-out perplexity per domain with the average, then the orderings.</summary>
public static class StudyMarkdown
{
    public static string Render(StudyReport report)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# FlexOlmo study ({report.Plan})");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Held-out perplexity per domain (windows of {report.SeqLen} tokens; {string.Join(", ", report.Domains.Select(d => $"{d} {report.Tokens[d]:N0}"))} tokens). " +
            $"Lower is better; the best per column is in bold. The study took {TimeSpan.FromSeconds(report.Seconds):mm\\:ss}.");
        text.AppendLine();
        text.AppendLine("| group | model | " + string.Join(" | ", report.Domains) + " | average |");
        text.AppendLine("|---|---|" + string.Concat(report.Domains.Select(_ => "---:|")) + "---:|");
        foreach (var row in report.Rows)
        {
            var cells = report.Domains.Select(d => Cell(row.Perplexity[d], report.Rows.Min(r => r.Perplexity[d]))).Append(Cell(row.Average, report.Rows.Min(r => r.Average)));
            text.AppendLine("| " + row.Group + " | " + row.Label + " | " + string.Join(" | ", cells) + " |");
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"The paper's orderings on average perplexity ({report.Orderings.Count(o => o.Passed)} of {report.Orderings.Count} hold at this scale):");
        text.AppendLine();
        foreach (var ordering in report.Orderings)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- {(ordering.Passed ? "holds" : "does not hold")}: {ordering.Claim}. {ordering.Detail}");
        }

        text.AppendLine();
        text.AppendLine(PaperFigures);
        text.AppendLine();
        text.AppendLine("How each model was made:");
        text.AppendLine();
        foreach (var row in report.Rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"- **{row.Label}**: {row.How}");
        }

        return text.ToString();
    }

    /// <summary>What the paper measured, for comparison (arXiv 2507.07024, Tables 1 and 3: average downstream score over 8 task groups, higher is better).</summary>
    public const string PaperFigures =
        "For comparison, the paper's 4-domain results (average downstream score, higher is better; not perplexity): public model 36.9, " +
        "BTM 43.4, FlexOlmo 46.7, with RT 47.8; without the bias 45.8, without domain init and bias 44.4, without coordinated training 38.8.";

    private static string Cell(double value, double best)
    {
        var text = value.ToString("0.00", CultureInfo.InvariantCulture);
        return value == best ? $"**{text}**" : text;
    }
}
