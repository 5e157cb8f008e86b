using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Formats;

namespace FlexOlmo.Data;

/// <summary>
/// Tokenises text files once into uint32 id files in a cache folder (keyed by the file's path, size, modification
/// time and the tokenizer), so a second run reads ids directly. Streams document by document: memory does not grow
/// with the corpus. Token shards are used in place, and need no tokenizer.
/// </summary>
public sealed class TokenCache(string folder, TextEncoding encoding)
{
    private const int FormatVersion = 1;

    public static string DefaultFolder => Path.Combine(Core.Native.TorchNative.CacheRoot(), "tokens");

    public string Folder { get; } = folder;

    /// <summary>Token sources for the files, tokenising what is not cached yet. <paramref name="rawElementSize"/> applies to headerless shards.</summary>
    public IReadOnlyList<TokenSource> Prepare(IReadOnlyList<string> files, int rawElementSize, IProgress<string>? progress = null, CancellationToken cancellationToken = default)
    {
        var sources = new List<TokenSource>();
        var (fresh, freshTokens) = (0, 0L);
        foreach (var file in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (file.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) || file.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            {
                sources.Add(TokenShard.Open(file, rawElementSize));
                continue;
            }

            var (source, tokenised) = Tokenize(file, encoding.Tokenizer, encoding.EosId, progress, cancellationToken);
            sources.Add(source);
            (fresh, freshTokens) = tokenised ? (fresh + 1, freshTokens + source.Tokens) : (fresh, freshTokens);
        }

        if (fresh > 0)
        {
            progress?.Report($"tokenised {fresh} file(s) into {freshTokens} tokens (cached in {Folder})");
        }

        if (sources.Sum(s => s.Tokens) == 0)
        {
            throw new DataException($"The data ({string.Join(", ", files.Take(3))}{(files.Count > 3 ? ", ..." : string.Empty)}) holds no text.");
        }

        return sources;
    }

    /// <summary>Files this large get a line of their own while they are tokenised; smaller ones only count in the summary.</summary>
    private const long AnnouncedFileBytes = 16 << 20;

    private (TokenSource Source, bool Tokenised) Tokenize(string file, ITextTokenizer tokenizer, int eosId, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var info = new FileInfo(file);
        var key = Key(info, tokenizer, eosId);
        var cached = Path.Combine(Folder, key + ".u32");
        var meta = Path.Combine(Folder, key + ".json");
        if (File.Exists(cached) && File.Exists(meta))
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(meta));
            var documents = document.RootElement.GetProperty("documents").GetInt64();
            return (new TokenSource(cached, 0, new FileInfo(cached).Length / 4, 4, documents), false);
        }

        if (info.Length >= AnnouncedFileBytes)
        {
            progress?.Report($"tokenising {file} ({info.Length >> 20} MiB)");
        }

        Directory.CreateDirectory(Folder);
        long tokens = 0;
        long documentCount = 0;
        AtomicFile.Write(cached, stream =>
        {
            var buffer = new byte[4];
            foreach (var chunk in DocumentReader.Read(file))
            {
                cancellationToken.ThrowIfCancellationRequested();
                foreach (var id in tokenizer.Encode(chunk.Text))
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)id);
                    stream.Write(buffer);
                    tokens++;
                }

                if (chunk.EndOfDocument)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)eosId);
                    stream.Write(buffer);
                    tokens++;
                    documentCount++;
                }
            }
        });
        AtomicFile.WriteAllText(meta, JsonSerializer.Serialize(new { source = file, tokens, documents = documentCount, tokenizer = tokenizer.Name }));
        return (new TokenSource(cached, 0, tokens, 4, documentCount), true);
    }

    private static string Key(FileInfo info, ITextTokenizer tokenizer, int eosId)
    {
        var identity = $"v{FormatVersion}\n{info.FullName}\n{info.Length}\n{info.LastWriteTimeUtc.Ticks}\n{TokenizerIdentity(tokenizer)}\n{eosId}";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..32];
    }

    private static string TokenizerIdentity(ITextTokenizer tokenizer)
    {
        var name = tokenizer.Name;
        return File.Exists(name) ? $"{name}:{Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(name)))}" : $"{name}:{tokenizer.VocabularySize}";
    }
}
