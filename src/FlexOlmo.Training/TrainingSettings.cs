namespace FlexOlmo.Training;

/// <summary>Optimisation settings shared by pretraining, expert training and router tuning.</summary>
public sealed record TrainingSettings
{
    public int SeqLen { get; init; } = 2048;

    /// <summary>Tokens per optimiser step (gradient accumulation reaches it); a multiple of <see cref="SeqLen"/>.</summary>
    public long BatchTokens { get; init; } = 65536;

    /// <summary>Instances per forward pass (memory); accumulation makes up the rest of the batch.</summary>
    public int MicroBatch { get; init; } = 4;

    /// <summary>
    /// Recompute each layer's activations in the backward pass instead of keeping them (<see cref="CheckpointedBackward"/>);
    /// null lets <see cref="TrainingMemory.Plan"/> choose by the memory the run would need.
    /// </summary>
    public bool? ActivationCheckpointing { get; init; }

    /// <summary>Optimiser steps; null to derive them from <see cref="Tokens"/> or one epoch of the data.</summary>
    public long? Steps { get; init; }

    public long? Tokens { get; init; }

    public double Lr { get; init; } = 9e-4;

    /// <summary>Warm-up steps; null for min(2000, 10% of the steps).</summary>
    public long? Warmup { get; init; }

    /// <summary>Cosine decay ends at this fraction of <see cref="Lr"/>.</summary>
    public double FinalLrRatio { get; init; } = 0.1;

    public double WeightDecay { get; init; }

    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.95;

    public double GradClip { get; init; } = 1.0;

    public double LogitZLoss { get; init; } = 1e-5;

    public double RouterZLoss { get; init; } = 1e-3;

    /// <summary>Expert training: the router rows' and bias's learning rate as a multiple of <see cref="Lr"/> (1 as the paper; 0 keeps the domain embedding).</summary>
    public double RouterLrScale { get; init; } = 1.0;

    public long Seed { get; init; }

    public double ValidationFraction { get; init; } = 0.01;

    /// <summary>Save a resumable checkpoint every this many steps (0 = only at the end or on interruption).</summary>
    public int CheckpointEvery { get; init; } = 200;

    public int InstancesPerStep => (int)(BatchTokens / SeqLen);

    /// <summary>Instances per optimiser step at most (a batch of 2048-token instances is then 134M tokens).</summary>
    public const int MaxInstancesPerStep = 65536;

    /// <summary>Checks the settings; the message names the option to change.</summary>
    public void Validate(int maxPositions)
    {
        if (SeqLen < 2)
        {
            throw new TrainingException($"--seq-len must be at least 2 (got {SeqLen}).");
        }

        if (SeqLen > maxPositions)
        {
            throw new TrainingException($"--seq-len {SeqLen} is longer than the model allows (max_position_embeddings {maxPositions}).");
        }

        if (BatchTokens < SeqLen || BatchTokens % SeqLen != 0)
        {
            throw new TrainingException($"--batch-tokens {BatchTokens} must be a positive multiple of --seq-len {SeqLen}.");
        }

        if (BatchTokens / SeqLen > MaxInstancesPerStep)
        {
            throw new TrainingException($"--batch-tokens {BatchTokens} is {BatchTokens / SeqLen} instances of {SeqLen} tokens per step; at most {MaxInstancesPerStep} are allowed.");
        }

        if (MicroBatch is < 1 or > MaxInstancesPerStep)
        {
            throw new TrainingException($"--micro-batch must be between 1 and {MaxInstancesPerStep} (got {MicroBatch}).");
        }

        Finite(Lr, "--lr", 0, 10, minExclusive: true);
        Finite(RouterLrScale, "--router-lr-scale", 0, 1000);
        Finite(RouterZLoss, "--router-z-loss", 0, 1000);
        Finite(LogitZLoss, "--logit-z-loss", 0, 1000);
        Finite(WeightDecay, "--weight-decay", 0, 100);
        Finite(ValidationFraction, "--val-fraction", 0, 0.5);
        Finite(FinalLrRatio, "final learning-rate ratio", 0, 1);
        Finite(GradClip, "gradient clipping", 0, double.MaxValue);
        Finite(Beta1, "beta1", 0, 1, maxExclusive: true);
        Finite(Beta2, "beta2", 0, 1, maxExclusive: true);
        if (Steps is < 1 || Tokens is < 1)
        {
            throw new TrainingException("--steps and --tokens must be positive.");
        }

        if (Warmup is < 0)
        {
            throw new TrainingException($"--warmup must be zero or positive (got {Warmup}).");
        }

        if (CheckpointEvery < 0)
        {
            throw new TrainingException($"--checkpoint-every must be zero (only at the end) or positive (got {CheckpointEvery}).");
        }
    }

    private static void Finite(double value, string option, double min, double max, bool minExclusive = false, bool maxExclusive = false)
    {
        var ok = double.IsFinite(value) && (minExclusive ? value > min : value >= min) && (maxExclusive ? value < max : value <= max);
        if (!ok)
        {
            throw new TrainingException($"{option} must be a number {(minExclusive ? ">" : ">=")} {min} and {(maxExclusive ? "<" : "<=")} {max} (got {value}).");
        }
    }

    /// <summary>What must not change between a run and its resume.</summary>
    public string ResumeKey(long steps) => $"seq_len={SeqLen};batch_tokens={BatchTokens};micro_batch={MicroBatch};steps={steps};lr={Lr:R};warmup={Warmup};wd={WeightDecay:R};seed={Seed};val={ValidationFraction:R};zr={RouterZLoss:R};zl={LogitZLoss:R};rlr={RouterLrScale:R}";
}
