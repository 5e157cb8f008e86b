namespace FlexOlmo.Core.Tokenization;

/// <summary>
/// Turns a growing list of token ids into text pieces as they are produced, never emitting half a character:
/// when the newest ids end inside a UTF-8 sequence (a byte-level token split a character), their text is held
/// back until the character is complete. Decodes a short window, not the whole output, at each step.
/// </summary>
public sealed class StreamingDetokenizer(ITextTokenizer tokenizer, bool skipSpecialTokens = true)
{
    private const char Replacement = '\uFFFD';
    private readonly List<int> _ids = [];
    private int _prefixOffset;
    private int _readOffset;

    /// <summary>All ids added so far.</summary>
    public IReadOnlyList<int> Ids => _ids;

    /// <summary>Adds one id and returns the text that is now complete (possibly empty).</summary>
    public string Add(int id)
    {
        _ids.Add(id);
        var prefix = tokenizer.Decode(_ids.Skip(_prefixOffset).Take(_readOffset - _prefixOffset), skipSpecialTokens);
        var full = tokenizer.Decode(_ids.Skip(_prefixOffset), skipSpecialTokens);
        if (full.Length <= prefix.Length || full[^1] == Replacement || !full.StartsWith(prefix, StringComparison.Ordinal))
        {
            return string.Empty;
        }

        var text = full[prefix.Length..];
        _prefixOffset = _readOffset;
        _readOffset = _ids.Count;
        return text;
    }

    /// <summary>Whatever is still held back (at the end of generation), even if it ends in a broken character.</summary>
    public string Flush()
    {
        var prefix = tokenizer.Decode(_ids.Skip(_prefixOffset).Take(_readOffset - _prefixOffset), skipSpecialTokens);
        var full = tokenizer.Decode(_ids.Skip(_prefixOffset), skipSpecialTokens);
        _prefixOffset = _readOffset = _ids.Count;
        return full.Length > prefix.Length && full.StartsWith(prefix, StringComparison.Ordinal) ? full[prefix.Length..] : string.Empty;
    }
}
