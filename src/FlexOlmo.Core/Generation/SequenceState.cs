using System.Text;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Core.Generation;

/// <summary>
/// One sequence being generated: its sampler, the tokens so far, the text that may be streamed (never half a
/// character, never the start of a stop string), and why it ended. Shared by batch generation and the server.
/// </summary>
public sealed class SequenceState : IDisposable
{
    private readonly StreamingDetokenizer? _detokenizer;
    private readonly List<int> _tokens = [];
    private readonly StringBuilder _text = new();
    private int _emitted;

    public SequenceState(GenerationRequest request, ITextTokenizer? tokenizer)
    {
        Request = request;
        Sampler = new TokenSampler(request.Sampling);
        _detokenizer = tokenizer is null ? null : new StreamingDetokenizer(tokenizer);
    }

    public GenerationRequest Request { get; }

    public TokenSampler Sampler { get; }

    public IReadOnlyList<int> Tokens => _tokens;

    public bool Finished { get; private set; }

    /// <summary>Set once finished: "stop" (EOS or a stop string) or "length".</summary>
    public GenerationResult? Result { get; private set; }

    /// <summary>Records the next token; returns the text that may now be streamed (possibly empty).</summary>
    public string Accept(int token)
    {
        _tokens.Add(token);
        var sampling = Request.Sampling;
        var eos = sampling.EosTokenIds.Contains(token);
        _text.Append(_detokenizer is null || eos ? string.Empty : _detokenizer.Add(token));
        string? reason = eos ? "stop" : null;
        var stopAt = FindStop(sampling.StopStrings);
        if (stopAt >= 0)
        {
            _text.Length = stopAt;
            reason = "stop";
        }
        else if (_tokens.Count >= sampling.MaxNewTokens)
        {
            reason = "length";
            if (_detokenizer is not null)
            {
                _text.Append(_detokenizer.Flush());
            }
        }

        var safe = reason is null ? _text.Length - HeldBack(sampling.StopStrings) : _text.Length;
        var fresh = safe > _emitted ? _text.ToString(_emitted, safe - _emitted) : string.Empty;
        _emitted = Math.Max(_emitted, safe);
        if (reason is not null)
        {
            Finish(reason);
        }

        return fresh;
    }

    /// <summary>Ends the sequence early (for example when its client went away).</summary>
    public void Finish(string reason)
    {
        if (Finished)
        {
            return;
        }

        Finished = true;
        Sampler.Dispose();
        Result = new GenerationResult(_tokens.ToArray(), _detokenizer is null ? null : _text.ToString(), reason);
    }

    private int FindStop(IReadOnlyList<string> stops)
    {
        if (stops.Count == 0)
        {
            return -1;
        }

        var text = _text.ToString();
        var first = -1;
        foreach (var stop in stops)
        {
            var at = text.IndexOf(stop, Math.Max(0, _emitted - stop.Length), StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        return first;
    }

    /// <summary>Characters at the end of the text that may be the start of a stop string (not streamed yet).</summary>
    private int HeldBack(IReadOnlyList<string> stops)
    {
        var held = 0;
        foreach (var stop in stops)
        {
            for (var length = Math.Min(stop.Length - 1, _text.Length); length > held; length--)
            {
                if (_text.ToString(_text.Length - length, length) == stop[..length])
                {
                    held = length;
                    break;
                }
            }
        }

        return held;
    }

    public void Dispose()
    {
        if (!Finished)
        {
            Sampler.Dispose();
        }
    }
}
