using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Data;

/// <summary>
/// How a model turns text files into token ids: its tokenizer and the end-of-text id put between documents. Both are
/// looked up only when a text file is actually read, so token shards (.npy, .bin) work with any model, including
/// one without a tokenizer or an eos_token_id.
/// </summary>
public sealed class TextEncoding
{
    private readonly Lazy<ITextTokenizer> _tokenizer;
    private readonly Lazy<int> _eos;

    public TextEncoding(Func<ITextTokenizer> tokenizer, Func<int> eos)
    {
        _tokenizer = new Lazy<ITextTokenizer>(tokenizer);
        _eos = new Lazy<int>(eos);
    }

    public TextEncoding(ITextTokenizer tokenizer, int eos)
        : this(() => tokenizer, () => eos)
    {
    }

    public ITextTokenizer Tokenizer => _tokenizer.Value;

    public int EosId => _eos.Value;

    /// <summary>The model folder's own tokenizer (tokenizer.json, or dolma2 for a dolma2 vocabulary) and EOS id.</summary>
    public static TextEncoding ForModel(string folder, ModelConfig config) => new(
        () => TokenizerLoader.Load(folder, config),
        () => GenerationDefaults.EosTokenIds(folder, config) is { Count: > 0 } ids
            ? ids[0]
            : throw new DataException($"{folder}: config.json has no eos_token_id, which text data needs to separate documents. Add it, or give token shards (.npy, .bin)."));
}
