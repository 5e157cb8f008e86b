using System.Globalization;
using ScottPlot;

namespace FlexOlmo.Evaluation;

/// <summary>
/// The report's chart: one row per mask, one column per domain, each cell coloured by its perplexity divided by
/// the best (lowest) perplexity any mask reached on that domain, so domains of different difficulty share one
/// scale, and labelled with the perplexity itself. Drawn by ScottPlot.
/// </summary>
internal static class PerplexityHeatmap
{
    /// <summary>The chart as PNG bytes.</summary>
    public static byte[] RenderPng(EvaluationReport report)
    {
        var rows = report.Masks.Count;
        var columns = report.Domains.Count;
        var best = report.Domains.Select(d => report.Masks.Min(m => report[m, d])).ToArray();
        var ratios = new double[rows, columns]; // [mask, domain]
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                ratios[r, c] = report[report.Masks[r], report.Domains[c]] / best[c];
            }
        }

        var darkFrom = 1 + (0.5 * (ratios.Cast<double>().Max() - 1)); // white labels on the darker half of the colour scale
        using var plot = new Plot();
        var heatmap = plot.Add.Heatmap(ratios);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis().Reversed();
        var colorBar = plot.Add.ColorBar(heatmap);
        colorBar.Label = "perplexity ÷ best on the domain";
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                var text = plot.Add.Text(report[report.Masks[r], report.Domains[c]].ToString("0.0", CultureInfo.InvariantCulture), c, RowY(r, rows));
                text.Alignment = Alignment.MiddleCenter;
                text.LabelFontSize = 13;
                text.LabelFontColor = ratios[r, c] < darkFrom ? Colors.Black : Colors.White;
            }
        }

        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, columns).Select(c => (double)c).ToArray(), report.Domains.ToArray());
        plot.Axes.Left.SetTicks(Enumerable.Range(0, rows).Select(r => RowY(r, rows)).ToArray(), report.Masks.ToArray());
        plot.Axes.Bottom.Label.Text = "domain (held-out text)";
        plot.Axes.Left.Label.Text = "experts the router may use";
        plot.Title($"Perplexity by expert mask and domain ({report.Tokens.Values.Sum():N0} tokens)");
        var width = 260 + (120 * columns);
        var height = 140 + (34 * rows);
        return plot.GetImageBytes(width, height, ImageFormat.Png);
    }

    /// <summary>ScottPlot draws row 0 of the intensities at the top; tick and label positions follow.</summary>
    private static double RowY(int row, int rows) => rows - 1 - row;
}
