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
        IsValidName(name) ? name : throw new PackageException($"{what} '{name}' is not allowed: use 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit, without '..'.");

    public static string CheckVersion(string version) =>
        IsValidVersion(version) ? version : throw new PackageException($"version '{version}' is not allowed: use 1-32 of A-Z, a-z, 0-9, '.', '+', '-', without '..' (for example 1.0.0).");

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

    [GeneratedRegex("^[a-z0-9][a-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")]
    private static partial Regex VersionPattern();
}
