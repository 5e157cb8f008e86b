using System.Globalization;
using System.Net;
using System.Text;

namespace FlexOlmo.Evaluation.Study;

/// <summary>REPORT.html: one self-contained page with a bar chart of average perplexity (inline SVG), the table and the orderings.</summary>
public static class StudyHtml
{
    private const int BarHeight = 18;
    private const int LabelWidth = 230;
    private const int ChartWidth = 420;

    public static string Render(StudyReport report)
    {
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\"><head><meta charset=\"utf-8\">");
        html.AppendLine(CultureInfo.InvariantCulture, $"<title>FlexOlmo study ({Encode(report.Plan)})</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}" +
            "th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}.best{font-weight:bold;background:#e6f4e6}.no{color:#a00}.yes{color:#070}</style>");
        html.AppendLine("</head><body>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<h1>FlexOlmo study ({Encode(report.Plan)})</h1>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<p>Average held-out perplexity over {report.Domains.Count} domains (lower is better), windows of {report.SeqLen} tokens, written {report.Created:u} by {Encode(report.Tool.Name)} {Encode(report.Tool.Version)}.</p>");
        html.AppendLine(Chart(report));
        html.AppendLine("<h2>The paper's orderings</h2><ul>");
        foreach (var ordering in report.Orderings)
        {
            html.AppendLine(CultureInfo.InvariantCulture, $"<li class=\"{(ordering.Passed ? "yes" : "no")}\">{(ordering.Passed ? "holds" : "does not hold")}: {Encode(ordering.Claim)}. <small>{Encode(ordering.Detail)}</small></li>");
        }

        html.AppendLine("</ul><h2>Perplexity per domain</h2><table><thead><tr><th>group</th><th>model</th>");
        foreach (var domain in report.Domains)
        {
            html.Append(CultureInfo.InvariantCulture, $"<th>{Encode(domain)}</th>");
        }

        html.AppendLine("<th>average</th></tr></thead><tbody>");
        foreach (var row in report.Rows)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{Encode(row.Group)}</td><td title=\"{Encode(row.How)}\">{Encode(row.Label)}</td>");
            foreach (var domain in report.Domains)
            {
                html.Append(Cell(row.Perplexity[domain], report.Rows.Min(r => r.Perplexity[domain])));
            }

            html.AppendLine(Cell(row.Average, report.Rows.Min(r => r.Average)) + "</tr>");
        }

        html.AppendLine("</tbody></table></body></html>");
        return html.ToString();
    }

    /// <summary>Horizontal bars of each row's average, scaled from 0.9x the best to the worst so differences show.</summary>
    private static string Chart(StudyReport report)
    {
        var min = report.Rows.Min(r => r.Average) * 0.9;
        var max = report.Rows.Max(r => r.Average);
        var span = Math.Max(max - min, 1e-9);
        var svg = new StringBuilder();
        var height = (report.Rows.Count * (BarHeight + 4)) + 8;
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{LabelWidth + ChartWidth + 70}\" height=\"{height}\" role=\"img\" aria-label=\"average perplexity per model\">");
        for (var i = 0; i < report.Rows.Count; i++)
        {
            var row = report.Rows[i];
            var y = 4 + (i * (BarHeight + 4));
            var width = Math.Max(2, (row.Average - min) / span * ChartWidth);
            var colour = row.Group switch { "flexolmo" => "#2b7bb9", "ablation" => "#d98c2b", "k" => "#7a5fb0", _ => "#888" };
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth - 6}\" y=\"{y + BarHeight - 5}\" text-anchor=\"end\" font-size=\"12\">{Encode(row.Label)}</text>");
            svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{LabelWidth}\" y=\"{y}\" width=\"{width:0.0}\" height=\"{BarHeight}\" fill=\"{colour}\"/>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{LabelWidth + width + 4:0.0}\" y=\"{y + BarHeight - 5}\" font-size=\"12\">{row.Average:0.00}</text>");
        }

        svg.Append("</svg>");
        return svg.ToString();
    }

    private static string Cell(double value, double best) =>
        string.Create(CultureInfo.InvariantCulture, $"<td{(value == best ? " class=\"best\"" : string.Empty)}>{value:0.00}</td>");

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
