namespace FlexOlmo.Core.Tokenization;

/// <summary>Text to token ids and back, with the model's special tokens.</summary>
public interface ITextTokenizer
{
    /// <summary>A short description (for example "dolma2 (cl100k_base)" or the tokenizer.json path).</summary>
    string Name { get; }

    /// <summary>Ids the tokenizer can produce (regular plus added tokens).</summary>
    int VocabularySize { get; }

    /// <summary>Added/special tokens by id (for example 100257 -> &lt;|endoftext|&gt;).</summary>
    IReadOnlyDictionary<int, string> SpecialTokens { get; }

    /// <summary>Encodes text; special-token strings in the text become their ids. No BOS or EOS is added.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Decodes ids; byte-level pieces of one character spread over several ids decode to that character.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);
}
