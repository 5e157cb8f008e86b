using System.Text.Json;

namespace FlexOlmo.Benchmarks;

/// <summary>Prints a benchmark's rows as aligned text and, with --json, writes them to a file too.</summary>
internal sealed class Report(string title)
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    private readonly List<Dictionary<string, object>> _rows = [];
    private readonly List<string> _notes = [];

    public void Add(Dictionary<string, object> row)
    {
        _rows.Add(row);
        Console.WriteLine(string.Join("  ", row.Select(kv => $"{kv.Key}={Show(kv.Value)}")));
    }

    /// <summary>A line about the setup (model, baselines measured); printed, and kept in the --json file.</summary>
    public void Note(string line)
    {
        _notes.Add(line);
        Console.WriteLine(line);
    }

    public void Save(string? path)
    {
        if (path is null)
        {
            return;
        }

        File.WriteAllText(path, JsonSerializer.Serialize(new { benchmark = title, notes = _notes, rows = _rows }, Indented));
        Console.WriteLine($"wrote {path}");
    }

    private static string Show(object value) => value switch
    {
        double d => d.ToString(d >= 100 ? "0.0" : "0.000", System.Globalization.CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty,
    };
}
