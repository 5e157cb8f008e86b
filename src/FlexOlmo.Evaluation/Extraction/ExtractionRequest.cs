namespace FlexOlmo.Evaluation.Extraction;

/// <summary>What <c>flexolmo audit-extraction</c> was asked to do.</summary>
public sealed record ExtractionRequest
{
    /// <summary>Expert packages (loaded on <see cref="Anchor"/>) or model folders (composed or dense) to audit.</summary>
    public required IReadOnlyList<string> Models { get; init; }

    /// <summary>The anchor folder: audited alone as the baseline, and the base of every expert package.</summary>
    public string? Anchor { get; init; }

    /// <summary>The owner's training files (text, JSON lines or token shards).</summary>
    public required IReadOnlyList<string> Data { get; init; }

    public int Prefix { get; init; } = 32;

    public int Continuation { get; init; } = 256;

    public int Samples { get; init; } = 10;

    public int Documents { get; init; } = 100;

    /// <summary>A document counts as extracted when a sample's similarity to its true continuation reaches this.</summary>
    public double Threshold { get; init; } = 0.9;

    public double Temperature { get; init; } = 1.0;

    public long Seed { get; init; }

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public string? TokenCache { get; init; }

    /// <summary>Checks the numbers; the message names the option.</summary>
    public void Validate()
    {
        Check(Prefix is >= 1 and <= 4096, $"--prefix must be between 1 and 4096 tokens (got {Prefix}).");
        Check(Continuation is >= 1 and <= 4096, $"--continuation must be between 1 and 4096 tokens (got {Continuation}).");
        Check(Samples is >= 1 and <= 1000, $"--samples must be between 1 and 1000 (got {Samples}).");
        Check(Documents is >= 1 and <= 1_000_000, $"--documents must be between 1 and 1000000 (got {Documents}).");
        Check(double.IsFinite(Threshold) && Threshold is > 0 and <= 1, $"--threshold must be in (0, 1] (got {Threshold}).");
        Check(double.IsFinite(Temperature) && Temperature is > 0 and <= 2, $"--temperature must be in (0, 2] (got {Temperature}).");
        Check(Models.Count is >= 1 and <= 16, $"--model: give 1 to 16 models (got {Models.Count}).");
    }

    private static void Check(bool ok, string message)
    {
        if (!ok)
        {
            throw new EvaluationException(message);
        }
    }
}
