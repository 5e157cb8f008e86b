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

    /// <summary>The file's exact text in pieces that end at a paragraph break (or a line break once a piece is large).</summary>
    private static IEnumerable<TextChunk> ReadText(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16);
        var pending = new StringBuilder();
        var block = new char[1 << 16];
        var emitted = false;
        int read;
        while ((read = reader.Read(block, 0, block.Length)) > 0)
        {
            pending.Append(block, 0, read);
            while (pending.Length > 0)
            {
                var text = pending.ToString();
                var cut = text.LastIndexOf("\n\n", StringComparison.Ordinal);
                cut = cut >= 0 ? cut + 2 : text.Length >= MaxChunkChars ? text.LastIndexOf('\n') + 1 : 0;
                if (cut <= 0 && text.Length >= MaxChunkChars)
                {
                    cut = text.Length; // one enormous line: split it anywhere
                }

                if (cut <= 0)
                {
                    break;
                }

                yield return new TextChunk(text[..cut], false);
                emitted = true;
                pending.Remove(0, cut);
            }
        }

        if (emitted || pending.Length > 0)
        {
            yield return new TextChunk(pending.ToString(), true); // an empty file is no document
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
