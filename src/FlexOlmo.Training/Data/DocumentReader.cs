using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace FlexOlmo.Training.Data;

/// <summary>A piece of a document's text; the last piece of each document has <see cref="EndOfDocument"/> set.</summary>
public readonly record struct TextChunk(string Text, bool EndOfDocument);

/// <summary>
/// Streams documents out of text files without holding a file in memory: a .txt file is one document, read in
/// paragraph-sized pieces; each line of a .jsonl / .jsonl.gz file is one document (its "text" field).
/// </summary>
public static class DocumentReader
{
    private const int MaxChunkChars = 1 << 20;

    public static IEnumerable<TextChunk> Read(string path) =>
        path.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) ? ReadText(path) : ReadJsonLines(path);

    private static IEnumerable<TextChunk> ReadText(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var buffer = new StringBuilder();
        string? pending = null;
        while (reader.ReadLine() is { } line)
        {
            buffer.Append(line).Append('\n');
            if (line.Length == 0 || buffer.Length >= MaxChunkChars)
            {
                if (pending is not null)
                {
                    yield return new TextChunk(pending, false);
                }

                pending = buffer.ToString();
                buffer.Clear();
            }
        }

        if (buffer.Length > 0)
        {
            if (pending is not null)
            {
                yield return new TextChunk(pending, false);
            }

            pending = buffer.ToString();
        }

        if (pending is not null)
        {
            yield return new TextChunk(pending, true);
        }
    }

    private static IEnumerable<TextChunk> ReadJsonLines(string path)
    {
        using var file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            string? text;
            try
            {
                using var document = JsonDocument.Parse(line);
                if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("text", out var field) || field.ValueKind != JsonValueKind.String)
                {
                    throw new TrainingException($"{path}:{number}: each line must be a JSON object with a string field \"text\".");
                }

                text = field.GetString();
            }
            catch (JsonException e)
            {
                throw new TrainingException($"{path}:{number}: not valid JSON ({e.Message}). Fix or remove that line.");
            }

            if (!string.IsNullOrEmpty(text))
            {
                yield return new TextChunk(text, true);
            }
        }
    }
}
