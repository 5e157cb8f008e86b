using System.Text.Json;
using FlexOlmo.Formats;
using FlexOlmo.Packages;

namespace FlexOlmo.Evaluation.Study;

/// <summary>One model of the study: its group (baseline, flexolmo, ablation, k), a short label, how it was made, and its held-out perplexity per domain.</summary>
public sealed record StudyRow(string Key, string Group, string Label, string How, IReadOnlyDictionary<string, double> Perplexity)
{
    /// <summary>The mean of the per-domain perplexities (every domain weighs the same).</summary>
    public double Average => Math.Round(Perplexity.Values.Average(), 4);
}

/// <summary>
/// The study's result (REPORT.json, .md, .html): every model's held-out perplexity per domain, and the paper's
/// orderings checked on the averages (<see cref="StudyOrderings"/>).
/// </summary>
public sealed record StudyReport(
    string Plan,
    IReadOnlyList<string> Domains,
    IReadOnlyDictionary<string, long> Tokens,
    int SeqLen,
    IReadOnlyList<StudyRow> Rows,
    IReadOnlyList<EffectCheck> Orderings,
    IReadOnlyDictionary<string, double> SoupWeights,
    double Seconds,
    DateTimeOffset Created,
    ToolInfo Tool)
{
    public StudyRow this[string key] => Rows.FirstOrDefault(r => r.Key == key) ?? throw new EvaluationException($"the study has no row '{key}'.");

    public string ToJson() => JsonSerializer.Serialize(this, EvaluationReport.JsonOptions) + "\n";

    public static StudyReport Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists || info.Length > 16 << 20)
        {
            throw new EvaluationException($"{path}: no study report there (or larger than 16 MiB).");
        }

        try
        {
            return JsonSerializer.Deserialize<StudyReport>(File.ReadAllText(path), EvaluationReport.JsonOptions)
                ?? throw new EvaluationException($"{path}: is empty (null); not a study report.");
        }
        catch (JsonException e)
        {
            throw new EvaluationException($"{path}: not a study report ({e.Message}).");
        }
    }

    /// <summary>Writes PREFIX.json, PREFIX.md and PREFIX.html, each atomically; returns their paths.</summary>
    public IReadOnlyList<string> Save(string prefix)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(prefix))!);
        var paths = new[] { prefix + ".json", prefix + ".md", prefix + ".html" };
        AtomicFile.WriteAllText(paths[0], ToJson());
        AtomicFile.WriteAllText(paths[1], StudyMarkdown.Render(this));
        AtomicFile.WriteAllText(paths[2], StudyHtml.Render(this));
        return paths;
    }
}
