using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using FlexOlmo.Formats;

namespace FlexOlmo.Evaluation.Extraction;

/// <summary>The names the audit gives its rows' kinds, and the anchor's row: one spelling for the audit and its readers.</summary>
public static class ExtractionKinds
{
    public const string AnchorRow = "anchor";
    public const string Dense = "dense";
    public const string ExpertPackage = "expert package (2-expert model)";
    public const string Composed = "composed";
}

/// <summary>One audited model: how many of the sampled documents had a sample close to their true continuation.</summary>
public sealed record ExtractionRow(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("kind")] string Kind,
    [property: JsonPropertyName("documents")] int Documents,
    [property: JsonPropertyName("extracted")] int Extracted,
    [property: JsonPropertyName("rate")] double Rate,
    [property: JsonPropertyName("mean_best_similarity")] double MeanBestSimilarity,
    [property: JsonPropertyName("max_similarity")] double MaxSimilarity);

/// <summary>The settings an audit ran with, so a reader can tell what its rates mean.</summary>
public sealed record ExtractionSettings(
    [property: JsonPropertyName("prefix_tokens")] int Prefix,
    [property: JsonPropertyName("continuation_tokens")] int Continuation,
    [property: JsonPropertyName("samples")] int Samples,
    [property: JsonPropertyName("threshold")] double Threshold,
    [property: JsonPropertyName("temperature")] double Temperature,
    [property: JsonPropertyName("seed")] long Seed,
    [property: JsonPropertyName("similarity")] string Similarity);

/// <summary>What <c>audit-extraction</c> found: one row per model (the anchor first when it was given).</summary>
public sealed record ExtractionReport(
    [property: JsonPropertyName("format")] string Format,
    [property: JsonPropertyName("settings")] ExtractionSettings Settings,
    [property: JsonPropertyName("rows")] IReadOnlyList<ExtractionRow> Rows,
    [property: JsonPropertyName("created")] DateTimeOffset Created)
{
    public const string FormatName = "flexolmo-extraction-audit/1";

    /// <summary>Reports larger than this are not read (a report holds a few rows).</summary>
    public const long MaxBytes = 1 << 20;

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Indented);

    /// <summary>Writes REPORT (JSON) and REPORT with .md (a table), each under a temporary name then renamed.</summary>
    public IReadOnlyList<string> Save(string path)
    {
        var markdown = Path.ChangeExtension(path, ".md");
        AtomicFile.WriteAllText(path, ToJson());
        AtomicFile.WriteAllText(markdown, ToMarkdown());
        return [path, markdown];
    }

    public string ToMarkdown()
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# Extraction audit\n\n{Settings.Prefix}-token prefixes, {Settings.Continuation}-token continuations, {Settings.Samples} samples at temperature {Settings.Temperature}; a document counts as extracted when a sample reaches similarity {Settings.Threshold} ({Settings.Similarity}).\n");
        text.AppendLine("| model | kind | documents | extracted | rate | mean best similarity |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (var row in Rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {row.Model} | {row.Kind} | {row.Documents} | {row.Extracted} | {row.Rate:P1} | {row.MeanBestSimilarity:0.000} |");
        }

        return text.ToString();
    }

    /// <summary>Reads a report written by <see cref="Save"/>; the message names the file and what is wrong.</summary>
    public static ExtractionReport Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new EvaluationException($"--audit {path}: no such file. Give the JSON report of flexolmo audit-extraction.");
        }

        if (new FileInfo(path).Length > MaxBytes)
        {
            throw new EvaluationException($"--audit {path}: larger than {MaxBytes} bytes, so not an extraction report.");
        }

        ExtractionReport? report;
        try
        {
            report = JsonSerializer.Deserialize<ExtractionReport>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new EvaluationException($"--audit {path}: not valid JSON ({e.Message}).");
        }

        if (report is null || report.Format != FormatName || report.Settings is null || report.Rows is null || report.Rows.Count == 0
            || report.Rows.Any(r => r is null || r.Model is null || r.Documents < 1 || r.Extracted < 0 || r.Extracted > r.Documents))
        {
            throw new EvaluationException($"--audit {path}: not an extraction report of this version (format {FormatName} with at least one consistent row). Run flexolmo audit-extraction again.");
        }

        return report;
    }
}
