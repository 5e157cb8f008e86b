using System.Collections.Concurrent;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Kernels;
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
/// </summary>
public sealed class GenerationEngine : IDisposable
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

    /// <summary>Queues a sequence; a full queue is a 429.</summary>
    public EngineSequence Submit(GenerationRequest request, ExpertSet experts, CancellationToken aborted)
    {
        if (Interlocked.Increment(ref _pendingCount) > _options.MaxQueue)
        {
            Interlocked.Decrement(ref _pendingCount);
            throw new ApiException(429, $"The server is busy ({_options.MaxQueue} sequences already wait); retry shortly.", null, "queue_full");
        }

        var sequence = new EngineSequence(request, experts, _host.Tokenizer, aborted);
        _pending.Enqueue(sequence);
        _metrics.Queued = _pendingCount;
        _signal.Release();
        return sequence;
    }

    private void Loop()
    {
        CpuGemv.RowInvariant = true;
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
                active.RemoveAll(s => s.State.Finished);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                _logger.LogError(e, "decode step failed; failing the {Count} sequences in it", active.Count);
                foreach (var sequence in active)
                {
                    sequence.Complete($"internal error: {e.Message}");
                }

                active.Clear();
            }
        }
    }

    /// <summary>Runs a new sequence's prompt alone (exactly as generate does) and takes its first token; false when it is already done.</summary>
    private bool Prefill(EngineSequence sequence)
    {
        using var scope = NewDisposeScope();
        var prompt = sequence.State.Request.PromptIds;
        sequence.Cache = _host.Model.CreateCache(1, prompt.Count + sequence.State.Request.Sampling.MaxNewTokens);
        var bias = Bias([sequence]);
        var ids = tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Count]).to(_host.Model.Device); // [1, P]
        var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
        var logits = _host.Model.Forward(ids, new ForwardOptions { Cache = sequence.Cache, ExpertBias = bias, LastTokenOnly = true, Trace = trace }); // [1, 1, V]
        CountUsage(trace);
        sequence.Position = prompt.Count;
        _metrics.PromptTokens(prompt.Count);
        Accept(sequence, logits[0, 0]);
        if (sequence.State.Finished)
        {
            Finish(sequence);
            return false;
        }

        return true;
    }

    private void Step(List<EngineSequence> active)
    {
        using var scope = NewDisposeScope();
        var device = _host.Model.Device;
        var ids = tensor(active.Select(s => (long)s.LastToken).ToArray(), [active.Count, 1]).to(device); // [R, 1]
        var positions = tensor(active.Select(s => s.Position).ToArray(), [active.Count, 1]).to(device); // [R, 1]
        var trace = _host.NumExperts > 0 ? new RouterTrace(recordLogits: false, countUsage: true) : null;
        var logits = _host.Model.ForwardRows(ids, positions, active.Select(s => s.Cache!).ToList(), Bias(active), trace); // [R, 1, V]
        CountUsage(trace);
        _metrics.BatchSize(active.Count);
        for (var r = 0; r < active.Count; r++)
        {
            active[r].Position++;
            Accept(active[r], logits[r, 0]);
            if (active[r].State.Finished)
            {
                Finish(active[r]);
            }
        }
    }

    private void Accept(EngineSequence sequence, Tensor logits)
    {
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

    /// <summary>Each row's experts minus those revoked now; null when every row may use every expert.</summary>
    private Tensor? Bias(IReadOnlyList<EngineSequence> rows)
    {
        if (_host.NumExperts == 0)
        {
            return null;
        }

        var revoked = _revocations.Revoked;
        foreach (var row in rows)
        {
            row.Effective = revoked.Count == 0 ? row.Experts : row.Experts.Without(revoked.Where(row.Experts.Contains));
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

        trace.Dispose();
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
