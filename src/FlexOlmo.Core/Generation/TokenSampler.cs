using FlexOlmo.Formats;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Generation;

// V=vocabulary

/// <summary>
/// Picks one request's next token from its logits, with its own random generator so that a request's samples do not
/// depend on which other requests share its batch. Numerically safe for every finite temperature &gt; 0, however tiny
/// or large: scores are shifted so the best is 0 before dividing (in float64), so nothing overflows and the softmax
/// always has a term of 1. Logits that are not finite (a broken model) are a <see cref="FlexOlmoException"/>.
/// </summary>
public sealed class TokenSampler : IDisposable
{
    private readonly SamplingOptions _options;
    private readonly Generator? _generator;
    private bool _disposed;

    public TokenSampler(SamplingOptions options)
    {
        options.Validate();
        _options = options;
        _generator = options.Temperature > 0 ? new Generator((ulong)options.Seed, CPU) : null;
    }

    /// <summary>logits [V] (any dtype, any device) -> token id.</summary>
    public int Sample(Tensor logits)
    {
        using var scope = NewDisposeScope();
        var scores = logits.to(ScalarType.Float64).cpu(); // [V]
        if (_generator is null)
        {
            return (int)scores.argmax().item<long>();
        }

        var best = scores.max();
        if (!double.IsFinite(best.item<double>()))
        {
            throw new FlexOlmoException("the model produced logits that are not finite numbers; no token can be sampled.");
        }

        scores = (scores - best) / _options.Temperature; // [V], <= 0, the best exactly 0 (-inf where a logit is -inf)
        if (_options.TopK > 0 && _options.TopK < scores.size(0))
        {
            var (kth, _) = scores.topk(_options.TopK); // [k]
            scores = scores.masked_fill(scores.lt(kth[-1]), double.NegativeInfinity);
        }

        if (_options.TopP < 1.0)
        {
            var (sorted, order) = scores.sort(descending: true); // [V]
            var cumulative = sorted.softmax(0).cumsum(0); // [V]
            // Drop a token when the tokens before it already reach top_p (the first token always stays).
            var drop = (cumulative - sorted.softmax(0)).gt(_options.TopP); // [V]
            var dropInOriginalOrder = zeros_like(drop).scatter(0, order, drop);
            scores = scores.masked_fill(dropInOriginalOrder, double.NegativeInfinity);
        }

        var probabilities = scores.softmax(0); // [V]
        return (int)multinomial(probabilities, 1, generator: _generator).item<long>();
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _generator?.Dispose();
        }
    }
}
