using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Formats;
using FlexOlmo.Training.Data;

namespace FlexOlmo.Training.Tokenizers;

/// <summary>
/// Trains a byte-level BPE tokenizer and writes it as a Hugging Face tokenizer.json (GPT-2 byte alphabet, cl100k-style
/// pre-tokenizer, merges in order), which <see cref="HfJsonTokenizer"/> and Hugging Face both load.
/// </summary>
/// <remarks>
/// Written by hand because no served package trains BPE (Microsoft.ML.Tokenizers only loads them). The classic
/// algorithm over a word-frequency table: count adjacent pairs, merge the most frequent (ties: smallest ids), repeat.
/// Reads at most <c>maxChars</c> characters of the data, so memory and time stay bounded.
/// </remarks>
public static partial class BpeTrainer
{
    public const string Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <param name="vocabularySize">Regular tokens: 256 bytes plus merges (special tokens come after).</param>
    /// <param name="specialTokens">Added after the regular tokens, in order (the first is usually &lt;|endoftext|&gt;).</param>
    public static void Train(IReadOnlyList<string> files, int vocabularySize, IReadOnlyList<string> specialTokens, string outPath, long maxChars = 50_000_000, CancellationToken cancellationToken = default)
    {
        if (vocabularySize < 256)
        {
            throw new TrainingException($"--vocab-size must be at least 256 (the byte alphabet); got {vocabularySize}.");
        }

        var words = CountWords(files, maxChars, cancellationToken);
        var merges = LearnMerges(words, vocabularySize - 256, cancellationToken);
        Write(outPath, merges, specialTokens);
    }

    /// <summary>Writes a tokenizer.json for the given merges (byte symbols 0..255, merged symbols 256.. in order).</summary>
    public static void Write(string path, IReadOnlyList<(int Left, int Right)> merges, IReadOnlyList<string> specialTokens)
    {
        var spellings = Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.Encode([(byte)b])).ToList();
        foreach (var (left, right) in merges)
        {
            spellings.Add(spellings[left] + spellings[right]);
        }

        AtomicFile.Write(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
            writer.WriteStartObject();
            writer.WriteString("version", "1.0");
            writer.WriteStartArray("added_tokens");
            for (var i = 0; i < specialTokens.Count; i++)
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", spellings.Count + i);
                writer.WriteString("content", specialTokens[i]);
                writer.WriteBoolean("single_word", false);
                writer.WriteBoolean("lstrip", false);
                writer.WriteBoolean("rstrip", false);
                writer.WriteBoolean("normalized", false);
                writer.WriteBoolean("special", true);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteNull("normalizer");
            writer.WriteStartObject("pre_tokenizer");
            writer.WriteString("type", "Sequence");
            writer.WriteStartArray("pretokenizers");
            writer.WriteStartObject();
            writer.WriteString("type", "Split");
            writer.WriteStartObject("pattern");
            writer.WriteString("Regex", Pattern);
            writer.WriteEndObject();
            writer.WriteString("behavior", "Isolated");
            writer.WriteBoolean("invert", false);
            writer.WriteEndObject();
            writer.WriteStartObject();
            writer.WriteString("type", "ByteLevel");
            writer.WriteBoolean("add_prefix_space", false);
            writer.WriteBoolean("trim_offsets", true);
            writer.WriteBoolean("use_regex", false);
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteNull("post_processor");
            writer.WriteStartObject("decoder");
            writer.WriteString("type", "ByteLevel");
            writer.WriteBoolean("add_prefix_space", true);
            writer.WriteBoolean("trim_offsets", true);
            writer.WriteBoolean("use_regex", true);
            writer.WriteEndObject();
            writer.WriteStartObject("model");
            writer.WriteString("type", "BPE");
            writer.WriteNull("dropout");
            writer.WriteNull("unk_token");
            writer.WriteBoolean("fuse_unk", false);
            writer.WriteBoolean("byte_fallback", false);
            writer.WriteBoolean("ignore_merges", false);
            writer.WriteStartObject("vocab");
            for (var id = 0; id < spellings.Count; id++)
            {
                writer.WriteNumber(spellings[id], id);
            }

            writer.WriteEndObject();
            writer.WriteStartArray("merges");
            foreach (var (left, right) in merges)
            {
                writer.WriteStringValue($"{spellings[left]} {spellings[right]}");
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.WriteEndObject();
        });
    }

    private static Dictionary<string, long> CountWords(IReadOnlyList<string> files, long maxChars, CancellationToken cancellationToken)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        long read = 0;
        foreach (var file in files.Where(f => !f.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) && !f.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)))
        {
            foreach (var chunk in DocumentReader.Read(file))
            {
                cancellationToken.ThrowIfCancellationRequested();
                foreach (Match match in PreTokenizer().Matches(chunk.Text))
                {
                    counts[match.Value] = counts.GetValueOrDefault(match.Value) + 1;
                }

                read += chunk.Text.Length;
                if (read >= maxChars)
                {
                    return counts;
                }
            }
        }

        if (counts.Count == 0)
        {
            throw new TrainingException("The tokenizer data holds no text (.txt or .jsonl).");
        }

        return counts;
    }

    private static List<(int, int)> LearnMerges(Dictionary<string, long> counts, int mergeCount, CancellationToken cancellationToken)
    {
        var words = counts.Select(kv => (Symbols: Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToList(), Count: kv.Value)).Where(w => w.Symbols.Count > 1).ToList();
        var merges = new List<(int, int)>();
        var pairs = new Dictionary<(int, int), long>();
        for (var next = 256; merges.Count < mergeCount; next++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            pairs.Clear();
            foreach (var (symbols, count) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = (symbols[i], symbols[i + 1]);
                    pairs[pair] = pairs.GetValueOrDefault(pair) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            var best = pairs.MaxBy(p => (p.Value, -p.Key.Item1, -p.Key.Item2)).Key;
            merges.Add(best);
            foreach (var (symbols, _) in words)
            {
                for (var i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = next;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }

            words.RemoveAll(w => w.Symbols.Count < 2);
        }

        return merges;
    }

    [GeneratedRegex(Pattern)]
    private static partial Regex PreTokenizer();
}
