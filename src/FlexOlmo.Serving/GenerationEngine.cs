using System.Collections.Concurrent;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FlexOlmo.Serving;

// R=sequences in the batch, E=experts, V=vocabulary

/// <summary>
/// Continuous batching on one thread that owns the model: a new sequence takes a slot as soon as one frees, and every
/// step is one forward pass over the decoding sequences (a token each) and the next <see cref="PrefillChunks"/> of the
/// waiting prompts (a few dozen positions per step), so the weights are streamed once for all of them
/// and a long prompt delays the others by part of a step, never by its whole prefill. Each sequence has its own expert
/// mask (re-applied every step, so a revocation takes effect immediately) and its own KV cache. The pass is
/// row-invariant: a sequence's tokens do not depend on what else is in it and equal what <c>flexolmo generate</c>
/// produces.
/// Failures are per sequence: a sequence whose prefill, sampling or text fails is completed with an error and leaves
/// the batch; when a shared step fails, its parts are retried one by one (each from its own start, whatever the failed
/// pass left in its cache) and only the parts that fail alone are failed. Clients get an error id, never internals.
/// </summary>
internal sealed class GenerationEngine : IDisposable
{
    private readonly ModelHost _host;
    private readonly RevocationState _revocations;
    private readonly ServerMetrics _metrics;
    private readonly ServerOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<EngineSequence> _pending = new();
    private readonly SemaphoreSlim _signal = new(0);
    private readonly CancellationTokenSource _stop = new();
    private readonly CollectionPacer _collections = new();
    private readonly Thread _thread;
    private int _pendingCount;

    public GenerationEngine(ModelHost host, RevocationState revocations, ServerMetrics metrics, ServerOptions options, ILogger<GenerationEngine> logger)
    {
        _host = host;
        _revocations = revocations;
        _metrics = metrics;
        _options = options;
        _logger = logger;
        _thread = new Thread(Loop) { IsBackground = true, Name = "flexolmo-engine" };
        _thread.Start();
    }

    /// <summary>Whether the engine thread is alive (readiness).</summary>
    public bool IsRunning => _thread.IsAlive;

    /// <summary>Test seam: runs on the engine thread before each token of a sequence is sampled; what it throws fails that sequence.</summary>
    internal Action<EngineSequence>? BeforeSample { get; set; }

    /// <summary>Test seam: runs on the engine thread before each forward pass with the sequences in it (decoding or prefilling); what it throws fails that pass.</summary>
    internal Action<IReadOnlyList<EngineSequence>>? BeforeForward { get; set; }

    /// <summary>Test seam: runs on the engine thread after each forward pass (its caches already advanced); what it throws fails that pass.</summary>
    internal Action<IReadOnlyList<EngineSequence>>? AfterForward { get; set; }

    /// <summary>Test seam: runs on the engine thread after each prefill chunk of a sequence.</summary>
    internal Action<EngineSequence>? AfterPrefillChunk { get; set; }

    /// <summary>
    /// Queues all of a request's sequences, or none: when they do not all fit in the queue, nothing is queued and the
    /// request gets 429 (with Retry-After).
    /// </summary>
    public IReadOnlyList<EngineSequence> SubmitAll(IReadOnlyList<GenerationRequest> requests, ExpertSet experts, CancellationToken aborted)
    {
        if (Interlocked.Add(ref _pendingCount, requests.Count) > _options.MaxQueue)
        {
            Interlocked.Add(ref _pendingCount, -requests.Count);
            throw new ApiException(429, $"The server is busy ({_options.MaxQueue} sequences may wait; this request needs {requests.Count} more); retry shortly.", null, "queue_full") { RetryAfterSeconds = 1 };
        }

        var sequences = requests.Select(r => new EngineSequence(r, experts, _host.Tokenizer, aborted)).ToList();
        foreach (var sequence in sequences)
        {
            _pending.Enqueue(sequence);
        }

        _metrics.Queued = Volatile.Read(ref _pendingCount);
        _signal.Release();
        return sequences;
    }

    private void Loop()
    {
        using var noGrad = no_grad();
        var active = new List<EngineSequence>();
        var prefilling = new List<EngineSequence>(); // admitted, prompt not yet all in the cache; first come, first served
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                foreach (var gone in active.Concat(prefilling).Where(s => s.Aborted.IsCancellationRequested).ToList())
                {
                    gone.State.Finish("cancelled");
                    Finish(gone);
                    active.Remove(gone);
                    prefilling.Remove(gone);
                }

                while (active.Count + prefilling.Count < _options.MaxBatch && _pending.TryDequeue(out var next))
                {
                    _metrics.Queued = Interlocked.Decrement(ref _pendingCount);
                    if (next.Aborted.IsCancellationRequested)
                    {
                        next.Complete("cancelled");
                        continue;
                    }

                    if (Admit(next))
                    {
                        prefilling.Add(next);
                    }
                }

                var chunks = PlanPrefill(prefilling, _host.Model.Config);
                _metrics.Active = active.Count;
                if (active.Count == 0 && chunks.Count == 0)
                {
                    _signal.Wait(250);
                    continue;
                }

                Step([.. active.Select(Part.Decode), .. chunks]);
                foreach (var chunk in chunks.Where(c => c.Last || c.Sequence.Failed))
                {
                    prefilling.Remove(chunk.Sequence);
                    if (!chunk.Sequence.Failed && !chunk.Sequence.State.Finished)
                    {
                        active.Add(chunk.Sequence); // decodes from the next step on
                    }
                }

                active.RemoveAll(s => s.State.Finished || s.Failed);
                _collections.AfterStep();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Only bookkeeping outside the per-sequence guards can get here; fail what is active, keep serving.
                var id = ErrorId();
                _logger.LogError(e, "engine error {ErrorId}; failing the {Count} active sequences", id, active.Count + prefilling.Count);
                foreach (var sequence in active.Concat(prefilling))
                {
                    Fail(sequence, id);
                }

                active.Clear();
                prefilling.Clear();
            }
        }
    }

    /// <summary>Gives a new sequence its KV cache; false (and the sequence failed) when that fails.</summary>
    private bool Admit(EngineSequence sequence)
    {
        try
        {
            sequence.Cache = _host.Model.CreateCache(1, sequence.State.Request.PromptIds.Count + sequence.State.Request.Sampling.MaxNewTokens);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(sequence, e, "prefill");
            return false;
        }
    }

    /// <summary>
    /// Most prompt positions one step takes beside the decoding rows (always at least one chunk): the next chunk of each
    /// of the first two or three waiting prompts. Chosen on <c>flexolmo-bench serve</c>'s 8 clients, whose short prompts
    /// arrive together: a budget of 48 gave 0.87x the offline throughput where 64 gave 0.89-0.95x (measured with
    /// 48-position chunks). A step that takes chunks of two long prompts holds the decoding rows longer than one chunk does.
    /// </summary>
    private const int PromptTokensPerStep = 64;

    /// <summary>
    /// The prompt chunks this step takes, in order of arrival: up to <see cref="PromptTokensPerStep"/> positions (always
    /// at least one chunk), each exactly the chunk <c>generate</c> would run next for that prompt.
    /// </summary>
    private static List<Part> PlanPrefill(List<EngineSequence> prefilling, ModelConfig config)
    {
        var chunks = new List<Part>();
        var spent = 0;
        foreach (var sequence in prefilling)
        {
            var promptLength = sequence.State.Request.PromptIds.Count;
            var (start, length) = PrefillChunks.Next(sequence.Prefilled, promptLength, config);
            if (spent > 0 && spent + length > PromptTokensPerStep)
            {
                break;
            }

            spent += length;
            chunks.Add(new Part(sequence, start, length, Prefill: true, Last: start + length == promptLength));
        }

        return chunks;
    }

    /// <summary>
    /// One forward pass for the decoding rows (a token each) and the planned prompt chunks together, so the weights are
    /// streamed once for all of them; then each decoding row takes its next token, and a prompt whose last chunk ran takes
    /// its first. When the shared pass fails, each part is retried alone and only the parts that fail alone are failed.
    /// </summary>
    private void Step(List<Part> parts)
    {
        using var scope = NewDisposeScope();
        Tensor logits;
        try
        {
            logits = Forward(parts); // [S, 1, V]
        }
        catch (Exception e) when (e is not OutOfMemoryException && parts.Count > 1)
        {
            _logger.LogWarning("a shared step of {Count} sequences failed ({Message}); running them one by one", parts.Count, e.Message);
            foreach (var part in parts)
            {
                StepAlone(part);
            }

            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(parts[0].Sequence, e, parts[0].Prefill ? "prefill" : "decode");
            return;
        }

        var decoding = parts.Count(p => !p.Prefill);
        if (decoding > 0)
        {
            _metrics.BatchSize(decoding);
        }

        for (var s = 0; s < parts.Count; s++)
        {
            After(parts[s], logits[s, 0]);
        }
    }

    private void StepAlone(Part part)
    {
        try
        {
            // The failed pass may have stored this part's keys, or even advanced past them if it failed after the layers
            // (in the LM head): start again from where the part starts.
            part.Sequence.Cache!.Truncate(part.Start);
            using var scope = NewDisposeScope();
            var logits = Forward([part]); // [1, 1, V]
            After(part, logits[0, 0]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(part.Sequence, e, part.Prefill ? "prefill" : "decode");
        }
    }

    /// <summary>
    /// One pass over the parts' tokens, one token per row and each part's rows consecutive, row-invariant: a sequence's
    /// numbers never depend on what else is in the pass, and a prompt chunk's are those of <c>generate</c>
    /// (<see cref="TextGenerator.PrefillChunk(Olmo2ForCausalLM, Tensor, long, KvCache, Tensor?)"/>). -> logits [S, 1, V] of each part's last row.
    /// </summary>
    private Tensor Forward(IReadOnlyList<Part> parts)
    {
        BeforeForward?.Invoke(parts.Select(p => p.Sequence).ToList());
        var device = _host.Model.Device;
        var ids = parts.SelectMany(p => p.Prefill ? p.Sequence.State.Request.PromptIds.Skip((int)p.Start).Take(p.Length).Select(t => (long)t) : [(long)p.Sequence.LastToken]).ToArray();
        var positions = parts.SelectMany(p => Enumerable.Range(0, p.Length).Select(i => p.Start + (long)i)).ToArray();
        var rows = (long)ids.Length;
        using var idTensor = tensor(ids, [rows, 1L]).to(device); // [R, 1]
        using var positionTensor = tensor(positions, [rows, 1L]).to(device); // [R, 1]
        using var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
        var tokens = parts.Select(p => p.Length).ToArray();
        var logits = _host.Model.ForwardRows(idTensor, positionTensor, parts.Select(p => p.Sequence.Cache!).ToList(), Bias(parts), trace, LinearMode.RowInvariant, tokens); // [S, 1, V]
        CountUsage(trace);
        AfterForward?.Invoke(parts.Select(p => p.Sequence).ToList());
        return logits;
    }

    /// <summary>What a part's pass leaves to do: a decoding row takes its next token; a prompt chunk records its progress and, if it was the last, the first token.</summary>
    private void After(Part part, Tensor logits)
    {
        var sequence = part.Sequence;
        if (!part.Prefill)
        {
            Advance(sequence, logits);
            return;
        }

        try
        {
            sequence.Prefilled = (int)(part.Start + part.Length);
            AfterPrefillChunk?.Invoke(sequence);
            if (!part.Last)
            {
                return;
            }

            sequence.Position = sequence.State.Request.PromptIds.Count;
            _metrics.PromptTokens(sequence.State.Request.PromptIds.Count);
            Accept(sequence, logits);
            if (sequence.State.Finished)
            {
                Finish(sequence);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(sequence, e, "prefill");
        }
    }

    /// <summary>Takes a row's next token; a failure here (sampling, text) fails that row only.</summary>
    private void Advance(EngineSequence sequence, Tensor logits)
    {
        try
        {
            sequence.Position++;
            Accept(sequence, logits);
            if (sequence.State.Finished)
            {
                Finish(sequence);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(sequence, e, "sampling");
        }
    }

    private void Accept(EngineSequence sequence, Tensor logits)
    {
        BeforeSample?.Invoke(sequence);
        var token = sequence.State.Sampler.Sample(logits);
        sequence.LastToken = token;
        sequence.FirstToken ??= DateTime.UtcNow;
        if (sequence.State.Tokens.Count == 0)
        {
            _metrics.FirstToken(sequence.FirstToken.Value - sequence.Arrived);
        }

        var text = sequence.State.Accept(token);
        _metrics.GeneratedTokens(1);
        sequence.Emit(new SequenceEvent(token, text));
    }

    private void Finish(EngineSequence sequence)
    {
        _metrics.Finished(DateTime.UtcNow - sequence.Arrived);
        sequence.Complete();
    }

    private void Fail(EngineSequence sequence, Exception e, string stage)
    {
        var id = ErrorId();
        _logger.LogError(e, "sequence failed during {Stage} (error {ErrorId})", stage, id);
        Fail(sequence, id);
    }

    private void Fail(EngineSequence sequence, string errorId)
    {
        _metrics.SequenceFailed();
        sequence.Fail($"Generation failed for this sequence (error {errorId}); other requests were not affected. The server log has the details under that id.");
    }

    private static string ErrorId() => Guid.NewGuid().ToString("N")[..12];

    /// <summary>
    /// Each part's experts minus those excluded now (revoked, or suspended while revocations cannot be checked), one row
    /// per token: [R, E], or null for a dense model.
    /// </summary>
    private Tensor? Bias(IReadOnlyList<Part> parts)
    {
        if (_host.NumExperts == 0)
        {
            return null;
        }

        var excluded = _revocations.Excluded;
        foreach (var part in parts)
        {
            var row = part.Sequence;
            row.Effective = excluded.Count == 0 ? row.Experts : row.Experts.Without(excluded.Where(row.Experts.Contains));
        }

        return ExpertMask.ToRouterBias(parts.SelectMany(p => Enumerable.Repeat(p.Sequence.Effective!, p.Length)).ToArray(), _host.NumExperts, _host.Model.Device);
    }

    private void CountUsage(RouterTrace? trace)
    {
        if (trace?.Usage is not { } usage)
        {
            return;
        }

        for (var e = 0; e < usage.Length; e++)
        {
            if (usage[e] > 0)
            {
                _metrics.ExpertTokens(_host.Experts[e].Name, usage[e]);
            }
        }
    }

    /// <summary>
    /// A sequence's share of one pass: a decoding row (its last token at its position) or a chunk of its prompt, the
    /// positions from <paramref name="Start"/> on.
    /// </summary>
    private readonly record struct Part(EngineSequence Sequence, long Start, int Length, bool Prefill, bool Last)
    {
        public static Part Decode(EngineSequence sequence) => new(sequence, sequence.Position, 1, Prefill: false, Last: false);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _signal.Release();
        _thread.Join(TimeSpan.FromSeconds(10));
        while (_pending.TryDequeue(out var sequence))
        {
            sequence.Complete("the server is shutting down");
        }

        _signal.Dispose();
        _stop.Dispose();
    }
}
