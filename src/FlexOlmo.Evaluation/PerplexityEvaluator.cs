using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using FlexOlmo.Packages;

namespace FlexOlmo.Evaluation;

/// <summary>What <c>flexolmo eval</c> was asked to do.</summary>
public sealed record EvaluationRequest
{
    /// <summary>A composed or dense model folder, an anchor folder, or an expert package.</summary>
    public required string Model { get; init; }

    /// <summary>The anchor folder, needed when <see cref="Model"/> is an expert package.</summary>
    public string? Anchor { get; init; }

    public required IReadOnlyList<EvaluationDomain> Domains { get; init; }

    /// <summary>Mask specs (see <see cref="ExpertMaskSpec"/>); null or empty for the defaults.</summary>
    public IReadOnlyList<string>? Masks { get; init; }

    /// <summary>Tokens per window; null for the model's context length, at most 2048.</summary>
    public int? SeqLen { get; init; }

    /// <summary>Predicted tokens per domain at most (windows spread evenly over the domain's text).</summary>
    public long MaxTokens { get; init; } = 65536;

    /// <summary>Windows per forward pass.</summary>
    public int BatchSize { get; init; } = 8;

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public string? TokenCache { get; init; }
}

/// <summary>One finished cell of the table.</summary>
public sealed record EvaluationProgress(int Done, int Total, string Mask, string Domain, double Perplexity);

/// <summary>
/// <c>flexolmo eval</c>: per-domain perplexity for each expert mask. Every mask sees the same windows of each
/// domain (non-overlapping, <c>seq_len</c> tokens, spread evenly over the text up to the token budget), so rows
/// differ only in the experts the router may use.
/// </summary>
public static class PerplexityEvaluator
{
    public const int DefaultMaxSeqLen = 2048;

    public static EvaluationReport Evaluate(EvaluationRequest request, IProgress<string>? log, IProgress<EvaluationProgress>? progress, CancellationToken cancellationToken)
    {
        if (request.MaxTokens < 1 || request.BatchSize < 1)
        {
            throw new EvaluationException($"--max-tokens ({request.MaxTokens}) and --batch-size ({request.BatchSize}) must be positive.");
        }

        List<ExpertMaskSpec> masks = [];
        using var evaluated = EvaluatedModel.Load(request.Model, request.Anchor, request.Device, request.DType, names => masks = Masks(request, names)); // masks checked before the weights load
        var model = evaluated.Model;
        model.eval();
        var config = model.Config;
        var seqLen = request.SeqLen ?? Math.Min(config.MaxPositionEmbeddings, DefaultMaxSeqLen);
        if (seqLen < 2 || seqLen > config.MaxPositionEmbeddings)
        {
            throw new EvaluationException($"--seq-len {seqLen}: must be between 2 and the model's max_position_embeddings ({config.MaxPositionEmbeddings}).");
        }

        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, evaluated.TextEncoding);
        var rawBytes = TokenWidth.ForVocabulary(config.VocabSize);
        var device = model.Device;
        var perplexity = masks.ToDictionary(m => m.Label, _ => new Dictionary<string, double>());
        var tokens = new Dictionary<string, long>();
        var total = masks.Count * request.Domains.Count;
        var done = 0;
        foreach (var domain in request.Domains)
        {
            var (data, windows) = OpenDomain(domain, cache, rawBytes, config.VocabSize, seqLen, request.MaxTokens, log, cancellationToken);
            using var dataScope = data;
            foreach (var mask in masks)
            {
                using var bias = evaluated.NumExperts > 1 && !mask.Experts.IsAll
                    ? ExpertMask.ToRouterBias(Enumerable.Repeat(mask.Experts, request.BatchSize).ToArray(), evaluated.NumExperts, device)
                    : null; // [batch, E]
                var (counted, value) = PerplexityMeter.Measure(
                    inputs => model.Forward(inputs, bias is null ? null : new ForwardOptions { ExpertBias = bias.narrow(0, 0, inputs.shape[0]) }),
                    data, windows, seqLen, request.BatchSize, device, cancellationToken);
                perplexity[mask.Label][domain.Name] = Math.Round(value, 4);
                tokens[domain.Name] = counted;
                progress?.Report(new EvaluationProgress(++done, total, mask.Label, domain.Name, value));
            }
        }

        return new EvaluationReport(
            Path.GetFullPath(request.Model),
            evaluated.Kind.ToString().ToLowerInvariant(),
            evaluated.ExpertNames,
            config.IsMoe ? config.NumExpertsPerTok : 1,
            seqLen,
            request.Domains.Select(d => d.Name).ToList(),
            tokens,
            masks.Select(m => m.Label).ToList(),
            masks.ToDictionary(m => m.Label, m => (IReadOnlyList<string>)m.Experts.Allowed.Select(i => evaluated.ExpertNames[i]).ToList()),
            perplexity.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, double>)p.Value),
            DateTimeOffset.UtcNow,
            ToolInfo.Current);
    }

    /// <summary>
    /// A domain's text as token instances, and the windows every row of a report reads: up to
    /// <paramref name="maxTokens"/> / <paramref name="seqLen"/> instances spread evenly over the text.
    /// </summary>
    internal static (TokenDataset Data, IReadOnlyList<long> Windows) OpenDomain(
        EvaluationDomain domain, TokenCache cache, int rawBytes, int vocabSize, int seqLen, long maxTokens, IProgress<string>? log, CancellationToken cancellationToken)
    {
        IReadOnlyList<string> files;
        try
        {
            files = DataFiles.Expand(domain.Paths);
        }
        catch (DataException e)
        {
            throw new EvaluationException($"--data {domain.Name}: {e.Message}");
        }

        var data = new TokenDataset(cache.Prepare(files, rawBytes, log, cancellationToken), vocabSize);
        var windows = Windows(data.InstanceCount(seqLen), maxTokens / seqLen);
        if (windows.Count == 0)
        {
            data.Dispose();
            throw new EvaluationException(
                $"--data {domain.Name}: {data.TotalTokens} tokens in {files.Count} file(s) do not fill one window of {seqLen + 1}; add text or lower --seq-len.");
        }

        log?.Report($"{domain.Name}: {windows.Count} window(s) of {seqLen} tokens from {files.Count} file(s) ({data.TotalTokens} tokens)");
        return (data, windows);
    }

    /// <summary>Up to <paramref name="wanted"/> instance indices spread evenly over <paramref name="available"/>.</summary>
    internal static IReadOnlyList<long> Windows(long available, long wanted)
    {
        var n = Math.Min(available, Math.Max(1, wanted));
        return Enumerable.Range(0, (int)n).Select(i => i * available / n).ToArray();
    }

    /// <summary>The masks a request asks for (or the defaults), checked against the model's expert names.</summary>
    private static List<ExpertMaskSpec> Masks(EvaluationRequest request, IReadOnlyList<string> names)
    {
        var masks = request.Masks is { Count: > 0 } given
            ? given.Select(spec => ExpertMaskSpec.Parse(spec, names)).ToList()
            : ExpertMaskSpec.Defaults(names).ToList();
        var duplicate = masks.GroupBy(m => m.Label).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new EvaluationException($"--masks: '{duplicate.Key}' is asked for twice.");
        }

        return masks;
    }
}
