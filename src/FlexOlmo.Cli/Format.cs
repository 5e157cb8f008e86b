using System.Globalization;
using System.Text.Json;

namespace FlexOlmo.Cli;

/// <summary>Human-readable numbers and the JSON settings every command's --json output uses.</summary>
internal static class Format
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One-line JSON that keeps non-ASCII text readable.</summary>
    public static readonly JsonSerializerOptions JsonLine = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Count(long value) => value switch
    {
        >= 1_000_000_000 => (value / 1e9).ToString("0.00", CultureInfo.InvariantCulture) + "B",
        >= 1_000_000 => (value / 1e6).ToString("0.00", CultureInfo.InvariantCulture) + "M",
        >= 1_000 => (value / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + "K",
        _ => value.ToString(CultureInfo.InvariantCulture),
    };

    public static string Bytes(long value) => value switch
    {
        >= 1L << 30 => (value / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (value / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (value / (double)(1L << 10)).ToString("0.0", CultureInfo.InvariantCulture) + " KiB",
        _ => value.ToString(CultureInfo.InvariantCulture) + " B",
    };

    public static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A message as one printable line: line breaks become spaces and other control characters \uXXXX, so a hostile
    /// value quoted in an error cannot split it or drive the terminal.
    /// </summary>
    public static string OneLine(string message) =>
        string.Concat(message.ReplaceLineEndings(" ").Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
