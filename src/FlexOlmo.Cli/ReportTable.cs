using System.Globalization;
using FlexOlmo.Evaluation;

namespace FlexOlmo.Cli;

/// <summary>An evaluation report as an aligned text table (perplexity, and the change against the anchor row).</summary>
internal static class ReportTable
{
    public static void Write(TextWriter output, EvaluationReport report)
    {
        var hasAnchor = report.Masks.Contains(ExpertMaskSpec.Anchor) && report.Masks.Count > 1;
        var header = report.Domains.Prepend("mask").ToArray();
        var rows = report.Masks.Select(mask => new[] { mask }.Concat(report.Domains.Select(domain =>
        {
            var value = report[mask, domain].ToString("0.00", CultureInfo.InvariantCulture);
            return hasAnchor && mask != ExpertMaskSpec.Anchor ? $"{value} ({ReportMarkdown.Change(report[mask, domain], report[ExpertMaskSpec.Anchor, domain])})" : value;
        })).ToArray()).ToList();
        var widths = header.Select((h, c) => rows.Select(r => r[c].Length).Append(h.Length).Max()).ToArray();
        output.WriteLine(Line(header, widths));
        output.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var row in rows)
        {
            output.WriteLine(Line(row, widths));
        }

        output.WriteLine(Format.Invariant($"perplexity on held-out text (lower is better{(hasAnchor ? "; in brackets: change against the anchor" : string.Empty)}); tokens per domain: {string.Join(", ", report.Domains.Select(d => $"{d} {report.Tokens[d]}"))}"));
    }

    private static string Line(string[] cells, int[] widths) =>
        string.Join("  ", cells.Select((cell, c) => c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd();
}
