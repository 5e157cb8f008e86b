using System.Text;
using System.Text.RegularExpressions;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;

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

        ByteLevelBpeJson.Write(
            path,
            spellings.Select((spelling, id) => (spelling, id)),
            merges.Select(m => (spellings[m.Left], spellings[m.Right])),
            specialTokens.Select((token, i) => (spellings.Count + i, token)));
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

    [GeneratedRegex(ByteLevelBpeJson.Cl100kPattern)]
    private static partial Regex PreTokenizer();
}
