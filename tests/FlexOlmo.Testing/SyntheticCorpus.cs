using System.Text;

namespace FlexOlmo.Testing;

/// <summary>
/// Small made-up "languages" with learnable structure, one per domain, so tests can check that an expert learns its
/// own domain better than an anchor that never saw it. Deterministic for a seed.
/// </summary>
public static class SyntheticCorpus
{
    /// <summary>Public text the anchor is pretrained on: simple sentences over a small word list.</summary>
    public static IEnumerable<string> Public(int documents, int seed)
    {
        var random = new Random(seed);
        string[] nouns = ["cat", "dog", "bird", "tree", "house", "river", "stone", "cloud"];
        string[] verbs = ["sees", "likes", "finds", "keeps", "moves", "holds"];
        for (var d = 0; d < documents; d++)
        {
            var text = new StringBuilder();
            for (var s = 0; s < 6; s++)
            {
                text.Append(System.Globalization.CultureInfo.InvariantCulture, $"the {nouns[random.Next(nouns.Length)]} {verbs[random.Next(verbs.Length)]} a {nouns[random.Next(nouns.Length)]}. ");
            }

            yield return text.ToString().Trim();
        }
    }

    /// <summary>Domain "counting": runs of number words counting up from a random start.</summary>
    public static IEnumerable<string> Counting(int documents, int seed)
    {
        var random = new Random(seed);
        string[] numbers = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
        for (var d = 0; d < documents; d++)
        {
            var start = random.Next(numbers.Length);
            yield return string.Join(" ", Enumerable.Range(0, 24).Select(i => numbers[(start + i) % numbers.Length]));
        }
    }

    /// <summary>Domain "chemistry": formula-like tokens in a fixed rhythm.</summary>
    public static IEnumerable<string> Chemistry(int documents, int seed)
    {
        var random = new Random(seed);
        string[] elements = ["H2O", "CO2", "NaCl", "CH4", "O2", "N2"];
        for (var d = 0; d < documents; d++)
        {
            var text = new StringBuilder();
            for (var s = 0; s < 8; s++)
            {
                var a = elements[random.Next(elements.Length)];
                var b = elements[(Array.IndexOf(elements, a) + 1) % elements.Length];
                text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{a} + {b} -> {b}{a}; ");
            }

            yield return text.ToString().Trim();
        }
    }

    /// <summary>Writes documents as JSON lines ({"text": ...}).</summary>
    public static string WriteJsonl(string path, IEnumerable<string> documents)
    {
        File.WriteAllLines(path, documents.Select(d => System.Text.Json.JsonSerializer.Serialize(new { text = d })));
        return path;
    }
}
