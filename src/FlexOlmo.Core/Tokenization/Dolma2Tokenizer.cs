using Microsoft.ML.Tokenizers;

namespace FlexOlmo.Core.Tokenization;

/// <summary>
/// allenai/dolma2-tokenizer, built from Microsoft.ML.Tokenizers' cl100k_base data: ids 0..100255 are the cl100k ranks,
/// its special tokens keep their cl100k ids, and &lt;|pad|&gt; is 100277. &lt;|endoftext|&gt; (100257) is EOS; no BOS is added.
/// </summary>
public sealed class Dolma2Tokenizer : ITextTokenizer
{
    public const int EndOfText = 100257;
    public const int Pad = 100277;

    /// <summary>The smallest vocabulary (real tokens) a dolma2 model has.</summary>
    public const int MinimumVocabulary = 100278;

    /// <summary>cl100k_base's regular tokens are ids 0..100255.</summary>
    private const int RegularTokens = 100256;

    private readonly TiktokenTokenizer _tokenizer;

    public Dolma2Tokenizer()
    {
        _tokenizer = TiktokenTokenizer.CreateForEncoding("cl100k_base", new Dictionary<string, int> { ["<|pad|>"] = Pad });
        SpecialTokens = (_tokenizer.SpecialTokens ?? new Dictionary<string, int>()).ToDictionary(kv => kv.Value, kv => kv.Key);
    }

    public string Name => "dolma2 (cl100k_base)";

    public int VocabularySize => MinimumVocabulary;

    public IReadOnlyDictionary<int, string> SpecialTokens { get; }

    public IReadOnlyList<int> Encode(string text) => _tokenizer.EncodeToIds(text);

    /// <summary>Decodes ids; ids of the padded embedding rows (no token) decode to nothing.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false) =>
        _tokenizer.Decode(ids.Where(id => SpecialTokens.ContainsKey(id) ? !skipSpecialTokens : id is >= 0 and < RegularTokens));
}
