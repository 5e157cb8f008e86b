using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace FlexOlmo.Serving;

/// <summary>Counters and histograms served at /metrics in the Prometheus text format.</summary>
internal sealed class ServerMetrics
{
    private static readonly double[] LatencyBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64];
    private readonly ConcurrentDictionary<string, long> _requests = new();
    private readonly Histogram _firstToken = new(LatencyBuckets);
    private readonly Histogram _duration = new(LatencyBuckets);
    private readonly Histogram _batch = new(BatchBuckets);
    private readonly ConcurrentDictionary<string, long> _expertTokens = new();
    private long _promptTokens;
    private long _generatedTokens;
    private long _sequenceFailures;

    public int Queued { get; set; }

    public int Active { get; set; }

    public void Request(string endpoint, int status) => _requests.AddOrUpdate($"endpoint=\"{endpoint}\",status=\"{status}\"", 1, (_, v) => v + 1);

    public void PromptTokens(int count) => Interlocked.Add(ref _promptTokens, count);

    public void GeneratedTokens(int count) => Interlocked.Add(ref _generatedTokens, count);

    public void SequenceFailed() => Interlocked.Increment(ref _sequenceFailures);

    public void FirstToken(TimeSpan latency) => _firstToken.Observe(latency.TotalSeconds);

    public void Finished(TimeSpan duration) => _duration.Observe(duration.TotalSeconds);

    public void BatchSize(int size) => _batch.Observe(size);

    public void ExpertTokens(string expert, long tokens) => _expertTokens.AddOrUpdate(expert, tokens, (_, v) => v + tokens);

    public string Render(RevocationState revocations)
    {
        var text = new StringBuilder();
        text.AppendLine("# HELP flexolmo_requests_total HTTP requests by endpoint and status.");
        text.AppendLine("# TYPE flexolmo_requests_total counter");
        foreach (var (labels, value) in _requests.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"flexolmo_requests_total{{{labels}}} {value}");
        }

        Counter(text, "flexolmo_prompt_tokens_total", "Prompt tokens processed.", Interlocked.Read(ref _promptTokens));
        Counter(text, "flexolmo_generated_tokens_total", "Tokens generated.", Interlocked.Read(ref _generatedTokens));
        Counter(text, "flexolmo_sequence_failures_total", "Sequences that ended with an error (each failed alone).", Interlocked.Read(ref _sequenceFailures));
        text.AppendLine("# HELP flexolmo_revocation_checks_total Revocation checks against the registry, by result.");
        text.AppendLine("# TYPE flexolmo_revocation_checks_total counter");
        text.AppendLine(CultureInfo.InvariantCulture, $"flexolmo_revocation_checks_total{{result=\"ok\"}} {revocations.Successes}");
        text.AppendLine(CultureInfo.InvariantCulture, $"flexolmo_revocation_checks_total{{result=\"error\"}} {revocations.Failures}");
        Gauge(text, "flexolmo_revocation_last_success_timestamp_seconds", "When the last revocation check succeeded (Unix time; 0: never).", revocations.LastSuccess?.ToUnixTimeSeconds() ?? 0);
        Gauge(text, "flexolmo_revocation_checking", "1 when the served experts' revocations are checked against a registry.", revocations.Checking ? 1 : 0);
        Gauge(text, "flexolmo_experts_revoked", "Experts revoked by their owners (excluded from every request).", revocations.Revoked.Count);
        Gauge(text, "flexolmo_experts_suspended", "1 while published experts are suspended because revocations could not be checked within the grace period.", revocations.Suspended ? 1 : 0);
        Gauge(text, "flexolmo_queue_length", "Sequences waiting for a batch slot.", Queued);
        Gauge(text, "flexolmo_active_sequences", "Sequences being decoded.", Active);
        _batch.Render(text, "flexolmo_batch_size", "Sequences per decode step.");
        _firstToken.Render(text, "flexolmo_time_to_first_token_seconds", "Time from arrival to the first token.");
        _duration.Render(text, "flexolmo_request_duration_seconds", "Time from arrival to the last token.");
        text.AppendLine("# HELP flexolmo_expert_tokens_total Token routings per expert (one per token, layer and chosen expert).");
        text.AppendLine("# TYPE flexolmo_expert_tokens_total counter");
        foreach (var (expert, value) in _expertTokens.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"flexolmo_expert_tokens_total{{expert=\"{expert}\"}} {value}");
        }

        return text.ToString();
    }

    private static void Counter(StringBuilder text, string name, string help, long value)
    {
        text.AppendLine(CultureInfo.InvariantCulture, $"# HELP {name} {help}");
        text.AppendLine(CultureInfo.InvariantCulture, $"# TYPE {name} counter");
        text.AppendLine(CultureInfo.InvariantCulture, $"{name} {value}");
    }

    private static void Gauge(StringBuilder text, string name, string help, long value)
    {
        text.AppendLine(CultureInfo.InvariantCulture, $"# HELP {name} {help}");
        text.AppendLine(CultureInfo.InvariantCulture, $"# TYPE {name} gauge");
        text.AppendLine(CultureInfo.InvariantCulture, $"{name} {value}");
    }

    private sealed class Histogram(double[] bounds)
    {
        private readonly long[] _counts = new long[bounds.Length + 1];
        private readonly Lock _gate = new();
        private double _sum;
        private long _total;

        public void Observe(double value)
        {
            lock (_gate)
            {
                var bucket = Array.FindIndex(bounds, b => value <= b);
                _counts[bucket < 0 ? bounds.Length : bucket]++;
                _sum += value;
                _total++;
            }
        }

        public void Render(StringBuilder text, string name, string help)
        {
            lock (_gate)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"# HELP {name} {help}");
                text.AppendLine(CultureInfo.InvariantCulture, $"# TYPE {name} histogram");
                long cumulative = 0;
                for (var i = 0; i < bounds.Length; i++)
                {
                    cumulative += _counts[i];
                    text.AppendLine(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"{bounds[i]}\"}} {cumulative}");
                }

                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_bucket{{le=\"+Inf\"}} {_total}");
                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_sum {_sum}");
                text.AppendLine(CultureInfo.InvariantCulture, $"{name}_count {_total}");
            }
        }
    }
}
