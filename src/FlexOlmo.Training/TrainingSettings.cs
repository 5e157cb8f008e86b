namespace FlexOlmo.Training;

/// <summary>Optimisation settings shared by pretraining, expert training and router tuning.</summary>
public sealed record TrainingSettings
{
    public int SeqLen { get; init; } = 2048;

    /// <summary>Tokens per optimiser step (gradient accumulation reaches it); a multiple of <see cref="SeqLen"/>.</summary>
    public long BatchTokens { get; init; } = 65536;

    /// <summary>Instances per forward pass (memory); accumulation makes up the rest of the batch.</summary>
    public int MicroBatch { get; init; } = 4;

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

        if (MicroBatch < 1)
        {
            throw new TrainingException($"--micro-batch must be at least 1 (got {MicroBatch}).");
        }

        if (Lr <= 0 || double.IsNaN(Lr))
        {
            throw new TrainingException($"--lr must be positive (got {Lr}).");
        }

        if (RouterLrScale < 0 || double.IsNaN(RouterLrScale))
        {
            throw new TrainingException($"--router-lr-scale must be zero or positive (got {RouterLrScale}).");
        }

        if (RouterZLoss < 0 || LogitZLoss < 0 || double.IsNaN(RouterZLoss) || double.IsNaN(LogitZLoss))
        {
            throw new TrainingException($"--router-z-loss and --logit-z-loss must be zero or positive (got {RouterZLoss}, {LogitZLoss}).");
        }

        if (Steps is < 1 || Tokens is < 1)
        {
            throw new TrainingException("--steps and --tokens must be positive.");
        }
    }

    /// <summary>What must not change between a run and its resume.</summary>
    public string ResumeKey(long steps) => $"seq_len={SeqLen};batch_tokens={BatchTokens};micro_batch={MicroBatch};steps={steps};lr={Lr:R};warmup={Warmup};wd={WeightDecay:R};seed={Seed};val={ValidationFraction:R};zr={RouterZLoss:R};zl={LogitZLoss:R};rlr={RouterLrScale:R}";
}
