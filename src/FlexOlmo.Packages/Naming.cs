using System.Text.RegularExpressions;

namespace FlexOlmo.Packages;

/// <summary>
/// The names and versions experts may have. They become registry paths, so they are restricted to a safe alphabet:
/// no path separators, no "..", nothing that could escape a folder or a blob prefix.
/// </summary>
public static partial class Naming
{
    public static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name) && !name.Contains("..", StringComparison.Ordinal);

    public static bool IsValidVersion(string? version) => version is not null && VersionPattern().IsMatch(version) && !version.Contains("..", StringComparison.Ordinal);

    public static string CheckName(string name, string what = "name") =>
        IsValidName(name) ? name : throw new PackageException($"{what} '{Printable(name)}' is not allowed: use 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit, without '..'.");

    /// <summary>A free-text field (owner, licence) that ends up in manifests and terminals: no control characters.</summary>
    public static string CheckText(string? text, string what, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(text) || text.Length > maxLength || text.Any(char.IsControl))
        {
            throw new PackageException($"{what} '{Printable(text ?? string.Empty)}' is not allowed: give 1-{maxLength} printable characters (no newlines or other control characters).");
        }

        return text;
    }

    /// <summary>Text safe to show in a message: control characters as \uXXXX.</summary>
    public static string Printable(string text) =>
        string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));

    public static string CheckVersion(string version) =>
        IsValidVersion(version) ? version : throw new PackageException($"version '{Printable(version)}' is not allowed: use 1-32 of A-Z, a-z, 0-9, '.', '+', '-', without '..' (for example 1.0.0).");

    /// <summary>Splits NAME[@VERSION].</summary>
    public static (string Name, string? Version) ParseReference(string reference)
    {
        var at = reference.LastIndexOf('@');
        var name = at < 0 ? reference : reference[..at];
        var version = at < 0 ? null : reference[(at + 1)..];
        CheckName(name);
        if (version is not null)
        {
            CheckVersion(version);
        }

        return (name, version);
    }

    // \z, not $: in .NET "$" also matches before a final newline, which would let "news\n" through.
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{0,63}\z")]
    private static partial Regex NamePattern();

    [GeneratedRegex(@"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}\z")]
    private static partial Regex VersionPattern();
}
