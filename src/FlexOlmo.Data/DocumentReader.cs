using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace FlexOlmo.Data;

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
        var lines = new LineReader(reader, path);
        var number = 0;
        while (lines.ReadLine() is { } line)
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            string? text;
            try
            {
                using var document = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 64 });
                if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("text", out var field) || field.ValueKind != JsonValueKind.String)
                {
                    throw new DataException($"{path}:{number}: each line must be a JSON object with a string field \"text\".");
                }

                text = field.GetString();
            }
            catch (JsonException e)
            {
                throw new DataException($"{path}:{number}: not valid JSON ({e.Message}). Fix or remove that line.");
            }

            if (!string.IsNullOrEmpty(text))
            {
                yield return new TextChunk(text, true);
            }
        }
    }

    /// <summary>
    /// Lines of a text stream, each at most <see cref="MaxLineChars"/> long (a file without line breaks must not take
    /// all memory), with decompression errors reported as the file's fault.
    /// </summary>
    private sealed class LineReader(TextReader reader, string path)
    {
        private const int MaxLineChars = 64 << 20;
        private readonly char[] _buffer = new char[1 << 16];
        private int _position;
        private int _length;

        public string? ReadLine()
        {
            var line = new StringBuilder();
            var any = false;
            while (true)
            {
                if (_position == _length)
                {
                    _length = Fill();
                    _position = 0;
                    if (_length == 0)
                    {
                        return any ? line.ToString() : null;
                    }
                }

                any = true;
                var pending = _buffer.AsSpan(_position, _length - _position);
                var end = pending.IndexOf('\n');
                var take = end >= 0 ? end : pending.Length;
                if (line.Length + take > MaxLineChars)
                {
                    throw new DataException($"{path}: a line is longer than {MaxLineChars >> 20} Mi characters; each line of a .jsonl file is one document, so this is not a JSON-lines file.");
                }

                line.Append(pending[..take]);
                _position += end >= 0 ? end + 1 : take;
                if (end >= 0)
                {
                    if (line.Length > 0 && line[^1] == '\r')
                    {
                        line.Length--;
                    }

                    return line.ToString();
                }
            }
        }

        private int Fill()
        {
            try
            {
                return reader.Read(_buffer, 0, _buffer.Length);
            }
            catch (InvalidDataException e)
            {
                throw new DataException($"{path}: cannot be decompressed ({e.Message}); a .gz file must be gzip-compressed JSON lines.");
            }
        }
    }
}
