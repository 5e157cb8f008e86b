using System.Globalization;
using System.Net;
using System.Text;

namespace FlexOlmo.Evaluation;

/// <summary>PREFIX.html: one self-contained page with the heat map (a PNG embedded as data) and the table.</summary>
internal static class ReportHtml
{
    public static string Render(EvaluationReport report)
    {
        var png = Convert.ToBase64String(PerplexityHeatmap.RenderPng(report));
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        html.AppendLine(CultureInfo.InvariantCulture, $"<title>FlexOlmo perplexity: {Encode(Path.GetFileName(report.Model.TrimEnd('/')))}</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}th:first-child,td:first-child{text-align:left}.best{font-weight:bold;background:#e6f4e6}</style>");
        html.AppendLine("</head><body>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<h1>Perplexity by expert mask and domain</h1>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<p>Model <code>{Encode(report.Model)}</code> ({Encode(report.Kind)}; experts {Encode(string.Join(", ", report.Experts))}; top-{report.ExpertsPerToken}), windows of {report.SeqLen} tokens, written {report.Created:u} by {Encode(report.Tool.Name)} {Encode(report.Tool.Version)}. Lower is better.</p>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<img alt=\"heat map of perplexity by mask and domain\" src=\"data:image/png;base64,{png}\">");
        html.AppendLine("<table><thead><tr><th>mask</th>");
        foreach (var domain in report.Domains)
        {
            html.AppendLine(CultureInfo.InvariantCulture, $"<th>{Encode(domain)}<br><small>{report.Tokens[domain]:N0} tokens</small></th>");
        }

        html.AppendLine("</tr></thead><tbody>");
        foreach (var mask in report.Masks)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td title=\"{Encode(string.Join(", ", report.MaskExperts[mask]))}\">{Encode(mask)}</td>");
            foreach (var domain in report.Domains)
            {
                var value = report[mask, domain];
                var best = value == report.Masks.Min(m => report[m, domain]);
                var change = report.Masks.Contains(ExpertMaskSpec.Anchor) && mask != ExpertMaskSpec.Anchor
                    ? $" <small>({ReportMarkdown.Change(value, report[ExpertMaskSpec.Anchor, domain])})</small>"
                    : string.Empty;
                html.Append(CultureInfo.InvariantCulture, $"<td{(best ? " class=\"best\"" : string.Empty)}>{value:0.00}{change}</td>");
            }

            html.AppendLine("</tr>");
        }

        html.AppendLine("</tbody></table>");
        if (report.Checks is { Count: > 0 } checks)
        {
            html.AppendLine(CultureInfo.InvariantCulture, $"<h2>Claims checked ({checks.Count(c => c.Passed)} of {checks.Count} hold)</h2><ul>");
            foreach (var check in checks)
            {
                html.AppendLine(CultureInfo.InvariantCulture, $"<li>{(check.Passed ? "&#x2705;" : "&#x274C;")} {Encode(check.Claim)}: {Encode(check.Detail)}</li>");
            }

            html.AppendLine("</ul>");
        }

        html.AppendLine("</body></html>");
        return html.ToString();
    }

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
