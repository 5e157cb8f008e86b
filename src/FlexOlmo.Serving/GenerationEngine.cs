using System.Collections.Concurrent;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FlexOlmo.Serving;

// R=sequences in the batch, E=experts, V=vocabulary

/// <summary>
/// Continuous batching on one thread that owns the model: a new sequence takes a slot as soon as one frees and is
/// prefilled alone, in <see cref="PrefillChunks"/> run between decode steps (at most one chunk's worth of positions
/// per step, so a long prompt delays the others' tokens by about one chunk, never by its whole prefill), then decoded
/// together with the others, one token per step, each with its own expert mask (re-applied every step,
/// so a revocation takes effect immediately) and its own KV cache. Decoding is row-invariant: a sequence's tokens do
/// not depend on what else is in its batch and equal what <c>flexolmo generate</c> produces.
/// Failures are per sequence: a sequence whose prefill, sampling or text fails is completed with an error and leaves
/// the batch; when a shared step fails, its rows are retried one by one (caches advance only after a whole step, so a
/// retry repeats nothing) and only the rows that fail alone are failed. Clients get an error id, never internals.
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

    /// <summary>Test seam: runs on the engine thread before each decode forward pass over its rows; what it throws fails that pass.</summary>
    internal Action<IReadOnlyList<EngineSequence>>? BeforeForward { get; set; }

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

                PrefillSome(prefilling, active);
                _metrics.Active = active.Count;
                if (active.Count == 0)
                {
                    if (prefilling.Count == 0)
                    {
                        _signal.Wait(250);
                    }

                    continue;
                }

                Step(active);
                active.RemoveAll(s => s.State.Finished || s.Failed);
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
    /// Prefills chunks of the waiting prompts in order, up to one chunk's worth of positions (always at least one
    /// chunk); a sequence whose prompt is all in its cache takes its first token and joins the decoding rows.
    /// </summary>
    private void PrefillSome(List<EngineSequence> prefilling, List<EngineSequence> active)
    {
        var spent = 0;
        while (prefilling.Count > 0)
        {
            var sequence = prefilling[0];
            var promptLength = sequence.State.Request.PromptIds.Count;
            var chunk = PrefillChunks.Next(sequence.Prefilled, promptLength);
            if (spent > 0 && spent + chunk.Length > PrefillChunks.Tokens)
            {
                return;
            }

            spent += chunk.Length;
            var last = chunk.Start + chunk.Length == promptLength;
            var goesOn = PrefillChunk(sequence, chunk, last);
            if (!goesOn || last)
            {
                prefilling.RemoveAt(0);
                if (goesOn)
                {
                    active.Add(sequence);
                }
            }
        }
    }

    /// <summary>
    /// Runs one chunk of a sequence's prompt alone (exactly as generate does) and, after the last, takes its first
    /// token; false when the sequence is done or failed.
    /// </summary>
    private bool PrefillChunk(EngineSequence sequence, (int Start, int Length) chunk, bool last)
    {
        try
        {
            using var scope = NewDisposeScope();
            var prompt = sequence.State.Request.PromptIds;
            var ids = tensor(prompt.Skip(chunk.Start).Take(chunk.Length).Select(t => (long)t).ToArray(), [1, chunk.Length]).to(_host.Model.Device); // [1, C]
            using var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
            var logits = _host.Model.Forward(ids, new ForwardOptions { Cache = sequence.Cache, ExpertBias = Bias([sequence]), LastTokenOnly = true, Trace = trace }); // [1, 1, V]
            CountUsage(trace);
            sequence.Prefilled = chunk.Start + chunk.Length;
            AfterPrefillChunk?.Invoke(sequence);
            if (!last)
            {
                return true;
            }

            sequence.Position = prompt.Count;
            _metrics.PromptTokens(prompt.Count);
            Accept(sequence, logits[0, 0]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(sequence, e, "prefill");
            return false;
        }

        if (sequence.State.Finished)
        {
            Finish(sequence);
            return false;
        }

        return true;
    }

    /// <summary>One decode step for every active row; on a failure of the shared step, each row is retried alone.</summary>
    private void Step(List<EngineSequence> active)
    {
        using var scope = NewDisposeScope();
        Tensor logits;
        try
        {
            logits = Forward(active); // [R, 1, V]
        }
        catch (Exception e) when (e is not OutOfMemoryException && active.Count > 1)
        {
            _logger.LogWarning("a shared decode step of {Count} sequences failed ({Message}); running them one by one", active.Count, e.Message);
            foreach (var row in active)
            {
                StepAlone(row);
            }

            return;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(active[0], e, "decode");
            return;
        }

        _metrics.BatchSize(active.Count);
        for (var r = 0; r < active.Count; r++)
        {
            Advance(active[r], logits[r, 0]);
        }
    }

    private void StepAlone(EngineSequence row)
    {
        try
        {
            using var scope = NewDisposeScope();
            var logits = Forward([row]); // [1, 1, V]
            Advance(row, logits[0, 0]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Fail(row, e, "decode");
        }
    }

    private Tensor Forward(IReadOnlyList<EngineSequence> rows)
    {
        BeforeForward?.Invoke(rows);
        var device = _host.Model.Device;
        var ids = tensor(rows.Select(s => (long)s.LastToken).ToArray(), [rows.Count, 1]).to(device); // [R, 1]
        var positions = tensor(rows.Select(s => s.Position).ToArray(), [rows.Count, 1]).to(device); // [R, 1]
        using var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
        // Row-invariant: a sequence's tokens never depend on what else is in its batch. Prefill runs each prompt alone.
        var logits = _host.Model.ForwardRows(ids, positions, rows.Select(s => s.Cache!).ToList(), Bias(rows), trace, LinearMode.RowInvariant); // [R, 1, V]
        CountUsage(trace);
        return logits;
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

    /// <summary>Each row's experts minus those excluded now (revoked, or suspended while revocations cannot be checked).</summary>
    private Tensor? Bias(IReadOnlyList<EngineSequence> rows)
    {
        if (_host.NumExperts == 0)
        {
            return null;
        }

        var excluded = _revocations.Excluded;
        foreach (var row in rows)
        {
            row.Effective = excluded.Count == 0 ? row.Experts : row.Experts.Without(excluded.Where(row.Experts.Contains));
        }

        return ExpertMask.ToRouterBias(rows.Select(r => r.Effective!).ToArray(), _host.NumExperts, _host.Model.Device);
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
