using System.IO.Compression;
using System.Reflection;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Core.Tests.Tokenization;

/// <summary>
/// Writes the dolma2 tokenizer as a Hugging Face tokenizer.json, converted from the cl100k_base ranks shipped in the
/// Microsoft.ML.Tokenizers data package (the conversion transformers applies to tiktoken files: every split of a
/// token into two tokens is a merge, ordered by the merged token's rank). Lets the tokenizer.json path be checked
/// against the same Hugging Face test vectors as the built-in dolma2 path.
/// </summary>
internal static class Cl100kTokenizerJson
{
    private static readonly Lazy<string> Cached = new(() =>
    {
        var path = Path.Combine(Path.GetTempPath(), $"flexolmo-cl100k-tokenizer-{Environment.ProcessId}.json");
        Write(path);
        return path;
    });

    public static string Path_ => Cached.Value;

    public static void Write(string path)
    {
        var ranks = ReadRanks();
        var vocab = ranks.ToDictionary(r => ByteLevelAlphabet.Encode(r.Bytes), r => r.Rank, StringComparer.Ordinal);
        var merges = new List<(string Left, string Right, int Rank)>();
        foreach (var (bytes, rank) in ranks.Where(r => r.Bytes.Length > 1))
        {
            var token = ByteLevelAlphabet.Encode(bytes);
            var local = new List<(string, string, int)>();
            for (var i = 1; i < token.Length; i++)
            {
                var left = token[..i];
                var right = token[i..];
                if (vocab.ContainsKey(left) && vocab.ContainsKey(right))
                {
                    local.Add((left, right, rank));
                }
            }

            merges.AddRange(local.OrderBy(m => vocab[m.Item1]).ThenBy(m => vocab[m.Item2]));
        }

        var ordered = merges.Select((m, i) => (m, i)).OrderBy(x => x.m.Rank).ThenBy(x => x.i).Select(x => x.m);
        var specials = new (int Id, string Text)[]
        {
            (100257, "<|endoftext|>"), (100258, "<|fim_prefix|>"), (100259, "<|fim_middle|>"), (100260, "<|fim_suffix|>"),
            (100276, "<|endofprompt|>"), (100277, "<|pad|>"),
        };
        ByteLevelBpeJson.Write(path, vocab.OrderBy(kv => kv.Value).Select(kv => (kv.Key, kv.Value)), ordered.Select(m => (m.Left, m.Right)), specials);
    }

    private static List<(byte[] Bytes, int Rank)> ReadRanks()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase");
        using var resource = assembly.GetManifestResourceStream("cl100k_base.tiktoken.deflate")!;
        using var inflated = new DeflateStream(resource, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        // The package's format: a "Capacity: N" line, then one base64 token per line in rank order.
        var ranks = new List<(byte[], int)>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length > 0 && !line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                ranks.Add((Convert.FromBase64String(line.Trim()), ranks.Count));
            }
        }

        return ranks;
    }
}
