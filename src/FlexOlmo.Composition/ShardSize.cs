using System.Globalization;
using System.Text.RegularExpressions;

namespace FlexOlmo.Composition;

/// <summary>
/// The largest safetensors shard a writer may produce, spelled as Hugging Face spells it ("5GB", "500MB", "2GiB" or
/// a byte count); 5 GB by default, as save_pretrained does. The one rule for recipes and the commands that write
/// checkpoints.
/// </summary>
public static partial class ShardSize
{
    public const long Default = 5_000_000_000;
    public const long Min = 1000;
    public const long Max = 1_000_000_000_000;

    /// <summary>The bytes a size names, or null when it is not a size. Sizes too large for a long saturate.</summary>
    public static long? TryParse(string text)
    {
        var match = SizePattern().Match(text);
        if (!match.Success)
        {
            return null;
        }

        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var unit = match.Groups[2].Value switch
        {
            "" or "B" => 1.0,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024,
            "GiB" => 1024.0 * 1024 * 1024,
            _ => 1024.0 * 1024 * 1024 * 1024,
        };
        var bytes = value * unit;
        return bytes >= long.MaxValue ? long.MaxValue : (long)bytes;
    }

    /// <summary>Whether a byte count is within the bounds a writer accepts.</summary>
    public static bool InRange(long bytes) => bytes is >= Min and <= Max;

    /// <summary>Parses an option's value, or throws naming the option and the accepted spellings.</summary>
    public static long Parse(string text, string option) =>
        TryParse(text) is { } bytes && InRange(bytes)
            ? bytes
            : throw new FlexOlmo.Formats.FlexOlmoException($"{option} {text}: not a shard size between 1KB and 1TB (write it as Hugging Face does: 5GB, 500MB, 2GiB or a byte count).");

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")]
    private static partial Regex SizePattern();
}
