using Microsoft.Extensions.FileSystemGlobbing;

namespace FlexOlmo.Data;

/// <summary>Turns the user's --data arguments (files, folders, globs) into a sorted list of supported files.</summary>
public static class DataFiles
{
    public static readonly string[] Extensions = [".txt", ".jsonl", ".jsonl.gz", ".npy", ".bin"];

    public static bool IsSupported(string path) => Extensions.Any(e => path.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    public static IReadOnlyList<string> Expand(IEnumerable<string> arguments)
    {
        var files = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var argument in arguments)
        {
            if (File.Exists(argument))
            {
                files.Add(Path.GetFullPath(argument));
                continue;
            }

            if (Directory.Exists(argument))
            {
                foreach (var file in Directory.EnumerateFiles(argument, "*", SearchOption.AllDirectories).Where(IsSupported))
                {
                    files.Add(Path.GetFullPath(file));
                }

                continue;
            }

            if (argument.IndexOfAny(['*', '?']) >= 0)
            {
                var (root, pattern) = SplitGlob(argument);
                var matcher = new Matcher();
                matcher.AddInclude(pattern);
                foreach (var file in matcher.GetResultsInFullPath(root).Where(IsSupported))
                {
                    files.Add(Path.GetFullPath(file));
                }

                continue;
            }

            throw new DataException($"--data {argument}: no such file or folder.");
        }

        if (files.Count == 0)
        {
            throw new DataException($"--data {string.Join(" ", arguments)}: matched no data files (supported: {string.Join(", ", Extensions)}).");
        }

        return files.ToList();
    }

    /// <summary>Splits "some/dir/**/*.txt" into the folder before the first wildcard and the rest.</summary>
    private static (string Root, string Pattern) SplitGlob(string glob)
    {
        var parts = glob.Replace('\\', '/').Split('/');
        var fixedCount = Array.FindIndex(parts, p => p.IndexOfAny(['*', '?']) >= 0);
        var root = fixedCount == 0 ? "." : string.Join('/', parts.Take(fixedCount));
        if (root.Length == 0)
        {
            root = "/";
        }

        return (root, string.Join('/', parts.Skip(fixedCount)));
    }
}
