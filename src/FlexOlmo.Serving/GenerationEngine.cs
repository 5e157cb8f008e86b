using System.Collections.Concurrent;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace FlexOlmo.Serving;

// R=sequences in the batch, E=experts, V=vocabulary

/// <summary>
/// Continuous batching on one thread that owns the model: new sequences are prefilled alone as soon as a slot frees,
/// then decoded together with the others, one token per step, each with its own expert mask (re-applied every step,
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
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                foreach (var gone in active.Where(s => s.Aborted.IsCancellationRequested).ToList())
                {
                    gone.State.Finish("cancelled");
                    Finish(gone);
                    active.Remove(gone);
                }

                while (active.Count < _options.MaxBatch && _pending.TryDequeue(out var next))
                {
                    _metrics.Queued = Interlocked.Decrement(ref _pendingCount);
                    if (next.Aborted.IsCancellationRequested)
                    {
                        next.Complete("cancelled");
                        continue;
                    }

                    if (Prefill(next))
                    {
                        active.Add(next);
                    }
                }

                _metrics.Active = active.Count;
                if (active.Count == 0)
                {
                    _signal.Wait(250);
                    continue;
                }

                Step(active);
                active.RemoveAll(s => s.State.Finished || s.Failed);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Only bookkeeping outside the per-sequence guards can get here; fail what is active, keep serving.
                var id = ErrorId();
                _logger.LogError(e, "engine error {ErrorId}; failing the {Count} active sequences", id, active.Count);
                foreach (var sequence in active)
                {
                    Fail(sequence, id);
                }

                active.Clear();
            }
        }
    }

    /// <summary>Runs a new sequence's prompt alone (exactly as generate does) and takes its first token; false when it is done or failed.</summary>
    private bool Prefill(EngineSequence sequence)
    {
        try
        {
            using var scope = NewDisposeScope();
            var prompt = sequence.State.Request.PromptIds;
            sequence.Cache = _host.Model.CreateCache(1, prompt.Count + sequence.State.Request.Sampling.MaxNewTokens);
            var bias = Bias([sequence]);
            var ids = tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Count]).to(_host.Model.Device); // [1, P]
            using var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
            var logits = _host.Model.Forward(ids, new ForwardOptions { Cache = sequence.Cache, ExpertBias = bias, LastTokenOnly = true, Trace = trace }); // [1, 1, V]
            CountUsage(trace);
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
