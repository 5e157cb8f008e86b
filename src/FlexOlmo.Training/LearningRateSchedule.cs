namespace FlexOlmo.Training;

/// <summary>Linear warm-up to the peak, then cosine decay to a fraction of it at the last step (as the FlexOlmo recipe).</summary>
internal sealed record LearningRateSchedule(double Peak, long Warmup, long TotalSteps, double FinalRatio)
{
    /// <summary>The learning rate for step <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (step < Warmup)
        {
            return Peak * (step + 1) / Warmup;
        }

        var decaySteps = Math.Max(1, TotalSteps - Warmup - 1);
        var progress = Math.Clamp((double)(step - Warmup) / decaySteps, 0, 1);
        var floor = Peak * FinalRatio;
        return floor + ((Peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
