using System.Text.Json;
using System.Text.Json.Serialization;
using FlexOlmo.Formats;
using FlexOlmo.Packages;

namespace FlexOlmo.Evaluation;

/// <summary>
/// Perplexity by expert mask and domain (PREFIX.json). <see cref="Perplexity"/> maps a mask label to a domain to
/// the perplexity; <see cref="Tokens"/> is how many predicted tokens each domain's figures rest on.
/// </summary>
public sealed record EvaluationReport(
    string Model,
    string Kind,
    IReadOnlyList<string> Experts,
    int ExpertsPerToken,
    int SeqLen,
    IReadOnlyList<string> Domains,
    IReadOnlyDictionary<string, long> Tokens,
    IReadOnlyList<string> Masks,
    IReadOnlyDictionary<string, IReadOnlyList<string>> MaskExperts,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> Perplexity,
    DateTimeOffset Created,
    ToolInfo Tool)
{
    /// <summary>Claims checked against the figures (the demo adds them); null when none were.</summary>
    public IReadOnlyList<EffectCheck>? Checks { get; init; }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Perplexity of <paramref name="mask"/> on <paramref name="domain"/>.</summary>
    public double this[string mask, string domain] => Perplexity.TryGetValue(mask, out var row) && row.TryGetValue(domain, out var value)
        ? value
        : throw new EvaluationException($"the report has no perplexity for mask '{mask}' on domain '{domain}'.");

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions) + "\n";

    /// <summary>Reads a report written by <see cref="ToJson"/> (bounded: reports are small).</summary>
    public static EvaluationReport Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new EvaluationException($"{path}: no such report.");
        }

        if (info.Length > 16 << 20)
        {
            throw new EvaluationException($"{path}: {info.Length} bytes is too large for an evaluation report (at most 16 MiB).");
        }

        try
        {
            return JsonSerializer.Deserialize<EvaluationReport>(File.ReadAllText(path), JsonOptions)
                ?? throw new EvaluationException($"{path}: is empty (null); not an evaluation report.");
        }
        catch (JsonException e)
        {
            throw new EvaluationException($"{path}: not an evaluation report ({e.Message}).");
        }
    }

    /// <summary>Writes PREFIX.json, PREFIX.md and PREFIX.html, each atomically; returns their paths.</summary>
    public IReadOnlyList<string> Save(string prefix)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(prefix))!;
        Directory.CreateDirectory(folder);
        var paths = new[] { prefix + ".json", prefix + ".md", prefix + ".html" };
        AtomicFile.WriteAllText(paths[0], ToJson());
        AtomicFile.WriteAllText(paths[1], ReportMarkdown.Render(this));
        AtomicFile.WriteAllText(paths[2], ReportHtml.Render(this));
        return paths;
    }
}
