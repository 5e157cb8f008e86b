using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace FlexOlmo.Core.Tokenization;

/// <summary>
/// A byte-level BPE tokenizer read from a Hugging Face <c>tokenizer.json</c> (what GPT-2, cl100k-derived and OLMo
/// tokenizers use), built on Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>. Added tokens (special or not)
/// are matched whole before BPE, as Hugging Face does.
/// </summary>
public sealed class HfJsonTokenizer : ITextTokenizer
{
    public const string FileName = "tokenizer.json";
    private const long MaxBytes = 64L << 20;

    /// <summary>GPT-2's pre-tokenizer pattern, used by ByteLevel(use_regex=true).</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer _tokenizer;
    private readonly HashSet<int> _special;

    private HfJsonTokenizer(string path, BpeTokenizer tokenizer, IReadOnlyDictionary<int, string> added, HashSet<int> special, int vocabularySize)
    {
        Name = path;
        _tokenizer = tokenizer;
        SpecialTokens = added;
        _special = special;
        VocabularySize = vocabularySize;
    }

    public string Name { get; }

    public int VocabularySize { get; }

    public IReadOnlyDictionary<int, string> SpecialTokens { get; }

    public IReadOnlyList<int> Encode(string text) => _tokenizer.EncodeToIds(text);

    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) =>
        _tokenizer.Decode(ids.Where(id => id >= 0 && id < VocabularySize && !(skipSpecialTokens && _special.Contains(id))), considerSpecialTokens: true);

    /// <summary>Reads a tokenizer.json; anything this class cannot reproduce exactly is an error naming the field.</summary>
    public static HfJsonTokenizer Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new TokenizerException($"{path}: not found.");
        }

        if (info.Length > MaxBytes)
        {
            throw new TokenizerException($"{path}: larger than {MaxBytes >> 20} MiB; not a tokenizer.json.");
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 64 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new TokenizerException($"{path}: must hold a JSON object (a Hugging Face tokenizer.json).");
            }

            return Build(path, document.RootElement);
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path}: not valid JSON ({e.Message}).");
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException or ArgumentException or IndexOutOfRangeException)
        {
            // A field of the wrong JSON type, or a vocabulary or merge list the BPE model cannot take.
            throw new TokenizerException($"{path}: not a tokenizer.json this reader understands ({e.Message}).");
        }
    }

    private static HfJsonTokenizer Build(string path, JsonElement root)
    {
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException($"{path}: field 'model' is missing.");
        }

        var type = model.TryGetProperty("type", out var t) ? t.GetString() : "BPE";
        if (type != "BPE")
        {
            throw new TokenizerException($"{path}: field 'model.type' is \"{type}\"; only byte-level BPE tokenizers are supported.");
        }

        if (!model.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException($"{path}: field 'model.vocab' must be an object of token -> id.");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw new TokenizerException($"{path}: model.vocab[\"{entry.Name}\"] must be a non-negative integer id.");
            }

            if (ByteLevelAlphabet.Decode(entry.Name) is null)
            {
                throw new TokenizerException($"{path}: model.vocab has \"{entry.Name}\", which is not in the byte-level alphabet; only byte-level BPE is supported.");
            }

            vocab[entry.Name] = id;
        }

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergesElement) && mergesElement.ValueKind == JsonValueKind.Array)
        {
            foreach (var merge in mergesElement.EnumerateArray())
            {
                merges.Add(merge.ValueKind switch
                {
                    JsonValueKind.String => merge.GetString()!,
                    JsonValueKind.Array when merge.GetArrayLength() == 2 => $"{merge[0].GetString()} {merge[1].GetString()}",
                    _ => throw new TokenizerException($"{path}: every entry of model.merges must be \"a b\" or [\"a\", \"b\"]."),
                });
            }
        }

        var added = new Dictionary<int, string>();
        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var addedElement) && addedElement.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in addedElement.EnumerateArray())
            {
                var id = token.GetProperty("id").GetInt32();
                added[id] = token.GetProperty("content").GetString() ?? throw new TokenizerException($"{path}: added_tokens entry {id} has no content.");
                if (token.TryGetProperty("special", out var isSpecial) && isSpecial.GetBoolean())
                {
                    special.Add(id);
                }
            }
        }

        var pattern = PreTokenizerPattern(path, root);
        var addedByText = added.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);
        var options = new BpeOptions(vocab)
        {
            Merges = merges,
            ByteLevel = true,
            SpecialTokens = addedByText,
            PreTokenizer = new RegexPreTokenizer(new Regex(pattern, RegexOptions.Compiled), addedByText),
        };
        var size = Math.Max(vocab.Values.DefaultIfEmpty(-1).Max(), added.Keys.DefaultIfEmpty(-1).Max()) + 1;
        return new HfJsonTokenizer(path, BpeTokenizer.Create(options), added, special, size);
    }

    /// <summary>The split pattern of the pre-tokenizer: an explicit Split regex, or GPT-2's when ByteLevel uses its own regex.</summary>
    private static string PreTokenizerPattern(string path, JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerException($"{path}: field 'pre_tokenizer' is missing; byte-level BPE needs a ByteLevel pre-tokenizer.");
        }

        var steps = pre.GetProperty("type").GetString() == "Sequence" ? pre.GetProperty("pretokenizers").EnumerateArray().ToList() : [pre];
        string? pattern = null;
        var byteLevel = false;
        foreach (var step in steps)
        {
            switch (step.GetProperty("type").GetString())
            {
                case "Split":
                    var regex = step.GetProperty("pattern");
                    pattern = regex.TryGetProperty("Regex", out var r) ? r.GetString() : Regex.Escape(regex.GetProperty("String").GetString() ?? string.Empty);
                    break;
                case "ByteLevel":
                    byteLevel = true;
                    if (step.TryGetProperty("add_prefix_space", out var prefix) && prefix.GetBoolean())
                    {
                        throw new TokenizerException($"{path}: pre_tokenizer ByteLevel.add_prefix_space=true is not supported.");
                    }

                    if (!step.TryGetProperty("use_regex", out var useRegex) || useRegex.GetBoolean())
                    {
                        pattern ??= Gpt2Pattern;
                    }

                    break;
                case var other:
                    throw new TokenizerException($"{path}: pre_tokenizer type \"{other}\" is not supported (Split and ByteLevel are).");
            }
        }

        if (!byteLevel || pattern is null)
        {
            throw new TokenizerException($"{path}: pre_tokenizer must be ByteLevel (optionally after a regex Split).");
        }

        return pattern;
    }
}
