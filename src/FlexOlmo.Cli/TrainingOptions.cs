using System.CommandLine;
using FlexOlmo.Formats;
using FlexOlmo.Training;

namespace FlexOlmo.Cli;

/// <summary>The optimisation options pretrain, train-expert and tune-router share, with each command's defaults.</summary>
internal sealed class TrainingOptions
{
    public TrainingOptions(TrainingSettings defaults)
    {
        Steps = new("--steps") { Description = "Optimiser steps (default: from --tokens, else one epoch of the data)." };
        Tokens = new("--tokens") { Description = "Training tokens (alternative to --steps)." };
        SeqLen = new("--seq-len") { Description = "Tokens per training instance.", DefaultValueFactory = _ => defaults.SeqLen };
        BatchTokens = new("--batch-tokens") { Description = "Tokens per optimiser step (a multiple of --seq-len); gradient accumulation reaches it.", DefaultValueFactory = _ => defaults.BatchTokens };
        MicroBatch = new("--micro-batch") { Description = "Instances per forward pass (bounds memory).", DefaultValueFactory = _ => defaults.MicroBatch };
        Lr = new("--lr") { Description = "Peak learning rate (linear warm-up, then cosine to 0.1x).", DefaultValueFactory = _ => defaults.Lr };
        Warmup = new("--warmup") { Description = "Warm-up steps (default: min(2000, 10% of the steps))." };
        WeightDecay = new("--weight-decay") { Description = "AdamW weight decay.", DefaultValueFactory = _ => defaults.WeightDecay };
        Seed = new("--seed") { Description = "Seed of the data order, split and initialisation.", DefaultValueFactory = _ => defaults.Seed };
        ValFraction = new("--val-fraction") { Description = "Share of instances held out for validation.", DefaultValueFactory = _ => defaults.ValidationFraction };
        CheckpointEvery = new("--checkpoint-every") { Description = "Save a resumable checkpoint every N steps (0: only at the end and on Ctrl-C).", DefaultValueFactory = _ => defaults.CheckpointEvery };
        Resume = new("--resume") { Description = "Continue from the checkpoint in the output folder (same settings)." };
        RouterZLoss = new("--router-z-loss") { Description = "Weight of the router z-loss (mean logsumexp(router logits)^2 per MoE layer).", DefaultValueFactory = _ => defaults.RouterZLoss };
        LogitZLoss = new("--logit-z-loss") { Description = "Weight of the logit z-loss (mean logsumexp(logits)^2).", DefaultValueFactory = _ => defaults.LogitZLoss };
        ActivationCheckpointing = new("--activation-checkpointing") { Description = "Recompute each layer's activations in the backward pass to save memory: true or false (default: chosen by the memory the run needs; the log shows the plan)." };
        TokenDtype = new("--token-dtype") { Description = "Id width of headerless token shards (.bin, raw .npy): uint16 or uint32 (default: by vocabulary size)." };
    }

    public Option<long?> Steps { get; }

    public Option<long?> Tokens { get; }

    public Option<int> SeqLen { get; }

    public Option<long> BatchTokens { get; }

    public Option<int> MicroBatch { get; }

    public Option<double> Lr { get; }

    public Option<long?> Warmup { get; }

    public Option<double> WeightDecay { get; }

    public Option<long> Seed { get; }

    public Option<double> ValFraction { get; }

    public Option<int> CheckpointEvery { get; }

    public Option<bool> Resume { get; }

    public Option<double> RouterZLoss { get; }

    public Option<double> LogitZLoss { get; }

    public Option<string?> TokenDtype { get; }

    public Option<bool?> ActivationCheckpointing { get; }

    public IEnumerable<Option> All => [Steps, Tokens, SeqLen, BatchTokens, MicroBatch, Lr, Warmup, WeightDecay, Seed, ValFraction, CheckpointEvery, Resume, RouterZLoss, LogitZLoss, TokenDtype, ActivationCheckpointing];

    public TrainingSettings Settings(ParseResult result, TrainingSettings defaults)
    {
        if (result.GetValue(Steps) is not null && result.GetValue(Tokens) is not null)
        {
            throw new FlexOlmoException("Give --steps or --tokens, not both.");
        }

        return defaults with
        {
            Steps = result.GetValue(Steps),
            Tokens = result.GetValue(Tokens),
            SeqLen = result.GetValue(SeqLen),
            BatchTokens = result.GetValue(BatchTokens),
            MicroBatch = result.GetValue(MicroBatch),
            Lr = result.GetValue(Lr),
            Warmup = result.GetValue(Warmup),
            WeightDecay = result.GetValue(WeightDecay),
            Seed = result.GetValue(Seed),
            ValidationFraction = result.GetValue(ValFraction),
            CheckpointEvery = result.GetValue(CheckpointEvery),
            ActivationCheckpointing = result.GetValue(ActivationCheckpointing),
            RouterZLoss = result.GetValue(RouterZLoss),
            LogitZLoss = result.GetValue(LogitZLoss),
        };
    }

    public int RawTokenBytes(ParseResult result) => result.GetValue(TokenDtype) switch
    {
        null => 0,
        "uint16" => 2,
        "uint32" => 4,
        var other => throw new FlexOlmoException($"--token-dtype '{other}': use uint16 or uint32."),
    };
}
