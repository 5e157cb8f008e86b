using FlexOlmo.Formats;

namespace FlexOlmo.Core.Generation;

/// <summary>How one request chooses its next tokens and when it stops.</summary>
public sealed record SamplingOptions
{
    /// <summary>0 is greedy (deterministic); otherwise logits are divided by it before sampling.</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of tokens whose probability reaches this (1 = off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary>Seed of this request's own random generator (sampling only).</summary>
    public long Seed { get; init; }

    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Stop when one of these ids is produced (it is kept in the token ids, not in the text).</summary>
    public IReadOnlyCollection<int> EosTokenIds { get; init; } = [];

    /// <summary>Stop when the generated text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    public void Validate()
    {
        if (Temperature < 0 || !double.IsFinite(Temperature))
        {
            throw new FlexOlmoException($"temperature must be a finite number >= 0 (got {Temperature}).");
        }

        if (TopP is <= 0 or > 1 || double.IsNaN(TopP))
        {
            throw new FlexOlmoException($"top_p must be in (0, 1] (got {TopP}).");
        }

        if (TopK < 0)
        {
            throw new FlexOlmoException($"top_k must be >= 0 (got {TopK}).");
        }

        if (MaxNewTokens < 1)
        {
            throw new FlexOlmoException($"max new tokens must be >= 1 (got {MaxNewTokens}).");
        }

        if (StopStrings.Any(string.IsNullOrEmpty))
        {
            throw new FlexOlmoException("stop strings must not be empty.");
        }
    }
}
