namespace FlexOlmo.Training;

/// <summary>One optimiser step's report (also one line of metrics.jsonl).</summary>
public sealed record TrainingProgress(
    long Step,
    long TotalSteps,
    long Tokens,
    double Loss,
    double CrossEntropy,
    double Lr,
    double GradNorm,
    double TokensPerSecond,
    double ElapsedSeconds)
{
    public TimeSpan Eta => Step >= TotalSteps || TokensPerSecond <= 0
        ? TimeSpan.Zero
        : TimeSpan.FromSeconds(ElapsedSeconds / Math.Max(1, Step) * (TotalSteps - Step));
}

/// <summary>How a run ended.</summary>
public sealed record TrainingOutcome(long Steps, long Tokens, bool Interrupted, double LastLoss, IReadOnlyList<double> Losses);
