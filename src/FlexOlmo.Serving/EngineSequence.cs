using System.Threading.Channels;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Serving;

/// <summary>A token as it is produced; the last event of a sequence carries its result.</summary>
internal sealed record SequenceEvent(int Token, string Text, GenerationResult? Done = null, string? Error = null);

/// <summary>
/// One prompt being served: its state, its requested experts, and the channel its tokens stream through. Only the
/// engine thread touches its native resources (KV cache, sampler) and frees them when it completes the sequence;
/// the HTTP side only reads events (a client that leaves merely cancels <see cref="Aborted"/>).
/// </summary>
internal sealed class EngineSequence
{
    private readonly Channel<SequenceEvent> _events = Channel.CreateUnbounded<SequenceEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public EngineSequence(GenerationRequest request, ExpertSet experts, ITextTokenizer? tokenizer, CancellationToken aborted)
    {
        State = new SequenceState(request, tokenizer);
        Experts = experts;
        Aborted = aborted;
    }

    public SequenceState State { get; }

    /// <summary>The experts the request may use (before revocations, which apply at every step).</summary>
    public ExpertSet Experts { get; }

    /// <summary>The experts that took part in the last step (after revocations).</summary>
    public ExpertSet? Effective { get; set; }

    public CancellationToken Aborted { get; }

    public DateTime Arrived { get; } = DateTime.UtcNow;

    public DateTime? FirstToken { get; set; }

    public ChannelReader<SequenceEvent> Events => _events.Reader;

    /// <summary>Set when the sequence ended with an error.</summary>
    public bool Failed { get; private set; }

    internal Core.Modeling.KvCache? Cache { get; set; }

    internal long Position { get; set; }

    /// <summary>Prompt positions already in the cache (the prompt is prefilled in chunks).</summary>
    internal int Prefilled { get; set; }

    internal int LastToken { get; set; }

    internal void Emit(SequenceEvent e) => _events.Writer.TryWrite(e);

    internal void Fail(string message) => Complete(message);

    internal void Complete(string? error = null)
    {
        if (error is not null)
        {
            Failed = true;
            _events.Writer.TryWrite(new SequenceEvent(-1, string.Empty, null, error));
        }
        else if (State.Result is { } result)
        {
            _events.Writer.TryWrite(new SequenceEvent(-1, string.Empty, result));
        }

        _events.Writer.TryComplete();
        Cache?.Dispose();
        Cache = null;
        State.Dispose();
    }
}
