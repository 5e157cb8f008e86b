using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;

namespace FlexOlmo.Evaluation.Ensembles;

/// <summary>What a BTM evaluation was asked to do.</summary>
public sealed record BtmRequest
{
    /// <summary>A composed model; each member is one of its expert masks (the owners' 2-expert models are only:X).</summary>
    public required string Model { get; init; }

    /// <summary>Mask specs of the members, two or more (see <see cref="ExpertMaskSpec"/>).</summary>
    public required IReadOnlyList<string> Members { get; init; }

    public required IReadOnlyList<EvaluationDomain> Domains { get; init; }

    /// <summary>Members that predict each token: those with the highest posterior weight (BTM's top-k).</summary>
    public int TopK { get; init; } = 2;

    /// <summary>Divides the prefix log-likelihoods before the softmax; 1 is the Bayesian posterior with a uniform prior.</summary>
    public double Temperature { get; init; } = 1.0;

    public int? SeqLen { get; init; }

    public long MaxTokens { get; init; } = 65536;

    public int BatchSize { get; init; } = 8;

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public string? TokenCache { get; init; }
}

/// <summary>
/// Branch-Train-Merge's ensemble (the paper's BTM baseline), evaluated on the same windows as <c>eval</c>: at each
/// position t every member m gets the weight softmax_m(-NLL_m(x_&lt;t) / τ), where NLL_m(x_&lt;t) is its summed
/// negative log-likelihood of the window's tokens before t; the top-k members keep their weights, renormalised, and
/// the ensemble predicts Σ_m w_m p_m(x_t | x_&lt;t). The first token of a window weighs the top-k members equally.
/// </summary>
public static class BtmEnsemble
{
    /// <summary>Perplexity of the ensemble per domain, and how many predicted tokens each rests on.</summary>
    public static (IReadOnlyDictionary<string, double> Perplexity, IReadOnlyDictionary<string, long> Tokens) Evaluate(
        BtmRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (request.Members.Count < 2)
        {
            throw new EvaluationException($"BTM needs two members or more (got {request.Members.Count}).");
        }

        if (request.TopK < 1 || request.TopK > request.Members.Count)
        {
            throw new EvaluationException($"BTM top-k {request.TopK} must be between 1 and the number of members ({request.Members.Count}).");
        }

        if (!double.IsFinite(request.Temperature) || request.Temperature <= 0)
        {
            throw new EvaluationException($"BTM temperature {request.Temperature} must be a positive number.");
        }

        using var evaluated = EvaluatedModel.Load(request.Model, null, request.Device, request.DType);
        var model = evaluated.Model;
        model.eval();
        var seqLen = request.SeqLen ?? Math.Min(model.Config.MaxPositionEmbeddings, PerplexityEvaluator.DefaultMaxSeqLen);
        var members = request.Members.Select(spec => ExpertMaskSpec.Parse(spec, evaluated.ExpertNames)).ToList();
        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, evaluated.TextEncoding);
        var perplexity = new Dictionary<string, double>();
        var tokens = new Dictionary<string, long>();
        foreach (var domain in request.Domains)
        {
            var (data, windows) = PerplexityEvaluator.OpenDomain(domain, cache, TokenWidth.ForVocabulary(model.Config.VocabSize), model.Config.VocabSize, seqLen, request.MaxTokens, log, cancellationToken);
            using var dataScope = data;
            var losses = members.Select(member =>
            {
                using var bias = ExpertMask.ToRouterBias(Enumerable.Repeat(member.Experts, request.BatchSize).ToArray(), evaluated.NumExperts, model.Device); // [batch, E]
                return PerplexityMeter.TokenLosses(
                    inputs => model.Forward(inputs, bias is null ? null : new ForwardOptions { ExpertBias = bias.narrow(0, 0, inputs.shape[0]) }),
                    data, windows, seqLen, request.BatchSize, model.Device, cancellationToken);
            }).ToList();
            var nats = 0.0;
            for (var w = 0; w < windows.Count; w++)
            {
                nats += WindowLoss(losses.Select(m => m[w]).ToList(), request.TopK, request.Temperature);
            }

            var count = (long)windows.Count * seqLen;
            perplexity[domain.Name] = Math.Round(Math.Exp(nats / count), 4);
            tokens[domain.Name] = count;
            log?.Report($"BTM on {domain.Name}: perplexity {perplexity[domain.Name]:0.00}");
        }

        return (perplexity, tokens);
    }

    /// <summary>The ensemble's summed NLL over one window, from each member's per-token NLL ([members][L]).</summary>
    internal static double WindowLoss(IReadOnlyList<double[]> memberLosses, int topK, double temperature)
    {
        var m = memberLosses.Count;
        var length = memberLosses[0].Length;
        var prefix = new double[m];
        var order = new int[m];
        var total = 0.0;
        var logTerms = new double[topK];
        Comparison<int> byPosterior = (a, b) => prefix[a] != prefix[b] ? prefix[a].CompareTo(prefix[b]) : a.CompareTo(b); // lowest prefix NLL first; ties keep member order
        for (var t = 0; t < length; t++)
        {
            for (var i = 0; i < m; i++)
            {
                order[i] = i;
            }

            Array.Sort(order, byPosterior);
            var best = -prefix[order[0]] / temperature;
            double weightSum = 0;
            for (var j = 0; j < topK; j++)
            {
                var i = order[j];
                var logWeight = (-prefix[i] / temperature) - best; // unnormalised, <= 0
                weightSum += Math.Exp(logWeight);
                logTerms[j] = logWeight - memberLosses[i][t];
            }

            // -log(sum_j w_j p_j / sum_j w_j), in log space so that no member's probability underflows to 0.
            var top = logTerms.Max();
            total += -(top + Math.Log(logTerms.Sum(v => Math.Exp(v - top)))) + Math.Log(weightSum);
            for (var i = 0; i < m; i++)
            {
                prefix[i] += memberLosses[i][t];
            }
        }

        return total;
    }
}
