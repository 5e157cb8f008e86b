namespace FlexOlmo.Formats;

/// <summary>
/// Writes files and folders so that readers see either nothing or the whole thing: a temporary sibling is
/// written, flushed to disk and renamed over the target. Temporaries carry the writer's process id; a process that
/// was killed cannot remove its own, so the next write beside the same target removes those whose process is gone.
/// </summary>
public static class AtomicFile
{
    private const string TemporarySuffix = ".tmp";

    /// <summary>
    /// A fresh temporary name beside <paramref name="target"/> (".NAME.TAG-PID-ID.tmp"), after removing temporaries of
    /// the same target left by processes that no longer run.
    /// </summary>
    public static string TemporarySibling(string target, string tag)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        var parent = Path.GetDirectoryName(full)!;
        var name = Path.GetFileName(full);
        RemoveAbandoned(parent, name);
        return Path.Combine(parent, $".{name}.{tag}-{Environment.ProcessId}-{Guid.NewGuid():N}{TemporarySuffix}");
    }

    /// <summary>Deletes a folder and everything in it, ignoring what cannot be deleted.</summary>
    public static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>Removes temporaries of <paramref name="name"/> in <paramref name="parent"/> whose writing process is gone.</summary>
    private static void RemoveAbandoned(string parent, string name)
    {
        if (!Directory.Exists(parent))
        {
            return;
        }

        foreach (var entry in Directory.EnumerateFileSystemEntries(parent, $".{name}.*{TemporarySuffix}"))
        {
            var middle = Path.GetFileName(entry)[(name.Length + 2)..^TemporarySuffix.Length]; // TAG-PID-ID
            var parts = middle.Split('-');
            if (parts.Length < 3 || !int.TryParse(parts[^2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid) || IsRunning(pid))
            {
                continue;
            }

            if (Directory.Exists(entry))
            {
                TryDeleteDirectory(entry);
            }
            else
            {
                TryDelete(entry);
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }

        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>Writes <paramref name="path"/> through a temporary sibling; on failure the temporary is removed and the target is untouched.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(directory);
        var temporary = TemporarySibling(full, "write");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                using (var writeback = new WritebackStream(stream))
                {
                    write(writeback);
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true);
            writer.Write(text);
        });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }

    /// <summary>
    /// Builds a folder under a temporary sibling name and renames it to <paramref name="target"/> when
    /// <paramref name="build"/> returns. The target must not exist unless <paramref name="overwrite"/> is set.
    /// </summary>
    public static void WriteDirectory(string target, Action<string> build, bool overwrite = false)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(target));
        var parent = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(parent);
        if (!overwrite && Path.Exists(full))
        {
            throw new FlexOlmoException($"{full} already exists; choose another output folder or remove it first.");
        }

        var temporary = TemporarySibling(full, "build");
        Directory.CreateDirectory(temporary);
        try
        {
            build(temporary);
            if (overwrite && Directory.Exists(full))
            {
                var old = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.old");
                Directory.Move(full, old);
                Directory.Move(temporary, full);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(temporary, full);
            }
        }
        catch
        {
            TryDeleteDirectory(temporary);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

}
