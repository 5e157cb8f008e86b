using System.Diagnostics;
using System.Text.Json;
using FlexOlmo.Data;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

// B=instances per micro-batch, L=sequence length

/// <summary>
/// The optimisation loop every training job shares: AdamW (betas 0.9/0.95), linear warm-up then cosine decay,
/// gradient accumulation to the batch size, gradient clipping, fp32 master copies of the trained parameters when the
/// model computes in bf16 (gradients move to them after every micro-batch, or every layer under activation
/// checkpointing, so no gradient accumulates in bf16 and only one layer's gradients exist in it at a time),
/// activation checkpointing by layer when <see cref="Memory"/> chooses it,
/// resumable checkpoints every N steps and on interruption, metrics.jsonl and progress reports. The data order
/// depends only on the seed and the step, so a resumed run continues exactly where it stopped.
/// </summary>
public sealed class TrainingLoop(ITrainingTask task, TokenDataset data, InstanceSplit split, TrainingSettings settings, long totalSteps, Device device, string outputFolder)
{
    public const string MetricsFile = "metrics.jsonl";

    private List<Parameter> _masters = [];

    public long TotalSteps => totalSteps;

    /// <summary>The run's memory plan, and whether it checkpoints activations.</summary>
    public TrainingMemory Memory { get; } = TrainingMemory.Plan(
        task.Model.Config, task.Model.NamedParameters().Sum(p => p.Parameter.numel()), task.Trainable.Sum(t => t.Parameter.numel()), task.Model.DType, settings, TrainingMemory.MachineBytes());

    public long Warmup => settings.Warmup ?? Math.Min(2000, Math.Max(1, totalSteps / 10));

    public TrainingOutcome Run(bool resume, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var trainable = task.Trainable;
        _masters = trainable.Select(t => t.Parameter.dtype == ScalarType.Float32 ? t.Parameter : Master(t.Parameter)).ToList();
        try
        {
            return Optimise(resume, progress, cancellationToken);
        }
        finally
        {
            // The fp32 masters are large (4 bytes per trained parameter): freed now, not when the GC gets to them.
            foreach (var (master, t) in _masters.Zip(trainable))
            {
                if (!ReferenceEquals(master, t.Parameter))
                {
                    master.Dispose();
                }
            }

            _masters = [];
        }
    }

    /// <summary>An fp32 copy of a narrower parameter, made without a second temporary copy.</summary>
    private static Parameter Master(Parameter parameter)
    {
        using var detached = parameter.detach();
        using var widened = detached.to(ScalarType.Float32);
        return new Parameter(widened);
    }

    private TrainingOutcome Optimise(bool resume, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var trainable = task.Trainable;
        var masters = _masters;
        using var optimizer = new AdamWOptimizer(
            trainable.Select((t, i) => (t.Name, masters[i], t.Decay, t.LrScale)).ToList(), settings.Beta1, settings.Beta2, 1e-8, settings.WeightDecay);
        var schedule = new LearningRateSchedule(settings.Lr, Warmup, totalSteps, settings.FinalLrRatio);
        var checkpointFolder = Path.Combine(outputFolder, TrainingCheckpoint.FolderName);
        var named = trainable.Select((t, i) => (t.Name, (Tensor)masters[i])).ToList();
        var key = settings.ResumeKey(totalSteps) + task.ResumeKey;
        long step = 0;
        long tokens = 0;
        var losses = new List<double>();
        if (resume)
        {
            var state = TrainingCheckpoint.Load(checkpointFolder, named, optimizer, key)
                ?? throw new TrainingException($"--resume: {checkpointFolder} holds no checkpoint to resume from.");
            step = state.Step;
            tokens = state.Tokens;
            losses.AddRange(state.Losses);
            CopyMastersToModel(trainable, masters);
            TrimMetrics(Path.Combine(outputFolder, MetricsFile), step);
        }
        else if (File.Exists(Path.Combine(outputFolder, MetricsFile)))
        {
            File.Delete(Path.Combine(outputFolder, MetricsFile));
        }

        Directory.CreateDirectory(outputFolder);
        using var metrics = new StreamWriter(Path.Combine(outputFolder, MetricsFile), append: true);
        var perStep = settings.InstancesPerStep;
        var watch = Stopwatch.StartNew();
        var startTokens = tokens;
        var lastLoss = losses.Count > 0 ? losses[^1] : double.NaN;
        while (step < totalSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                TrainingCheckpoint.Save(checkpointFolder, named, optimizer, new TrainingCheckpoint.State(step, tokens, key, losses));
                return new TrainingOutcome(step, tokens, Interrupted: true, lastLoss, losses);
            }

            var lr = schedule.At(step);

            foreach (var t in trainable)
            {
                t.Parameter.grad = null;
            }

            foreach (var master in masters)
            {
                master.grad = null;
            }

            double stepLoss = 0;
            double stepCrossEntropy = 0;
            try
            {
                for (var start = 0; start < perStep; start += settings.MicroBatch)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    var count = Math.Min(settings.MicroBatch, perStep - start);
                    var instances = Enumerable.Range(start, count).Select(j => split.TrainInstanceAt((step * perStep) + j)).ToArray();
                    var batch = Batches.Make(data, instances, settings.SeqLen, device); // [B, L+1]
                    var weight = (double)count / perStep;
                    var (total, crossEntropy) = Memory.Checkpointing
                        ? CheckpointedBackward.Run(task.Model, batch, settings, weight, MoveGradients, cancellationToken)
                        : LanguageModelLoss.Backward(task.Model, batch, settings, weight);
                    MoveGradients();
                    stepLoss += total * weight;
                    stepCrossEntropy += crossEntropy * weight;
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Ctrl-C within a step (minutes long at real size): its gradients are never applied, and since neither the masters
                // nor the optimiser have moved yet, the check at the top of the loop saves the exact checkpoint of the steps before it.
                continue;
            }

            var gradNorm = settings.GradClip > 0 ? nn.utils.clip_grad_norm_(masters, settings.GradClip) : double.NaN;
            optimizer.Step(lr);
            CopyMastersToModel(trainable, masters);
            step++;
            tokens += (long)perStep * settings.SeqLen;
            lastLoss = stepLoss;
            losses.Add(stepLoss);
            var report = new TrainingProgress(step, totalSteps, tokens, stepLoss, stepCrossEntropy, lr, gradNorm, (tokens - startTokens) / watch.Elapsed.TotalSeconds, watch.Elapsed.TotalSeconds);
            metrics.WriteLine(JsonSerializer.Serialize(new
            {
                step,
                tokens,
                loss = stepLoss,
                cross_entropy = stepCrossEntropy,
                lr,
                grad_norm = gradNorm,
                tokens_per_s = report.TokensPerSecond,
                elapsed_s = report.ElapsedSeconds,
            }));
            metrics.Flush();
            progress?.Report(report);
            if (settings.CheckpointEvery > 0 && step % settings.CheckpointEvery == 0 && step < totalSteps)
            {
                TrainingCheckpoint.Save(checkpointFolder, named, optimizer, new TrainingCheckpoint.State(step, tokens, key, losses));
            }
        }

        TrainingCheckpoint.Save(checkpointFolder, named, optimizer, new TrainingCheckpoint.State(step, tokens, key, losses));
        return new TrainingOutcome(step, tokens, Interrupted: false, lastLoss, losses);
    }

    /// <summary>
    /// Drops the rows of steps after the checkpoint being resumed (a run that was killed wrote them before its last
    /// checkpoint could), so metrics.jsonl has each step once.
    /// </summary>
    private static void TrimMetrics(string path, long step)
    {
        if (!File.Exists(path))
        {
            return;
        }

        var kept = File.ReadLines(path).Where(line =>
        {
            try
            {
                using var row = JsonDocument.Parse(line);
                return row.RootElement.TryGetProperty("step", out var s) && s.TryGetInt64(out var n) && n <= step;
            }
            catch (JsonException)
            {
                return false; // a row cut short when the process was killed
            }
        }).ToList();
        Formats.AtomicFile.WriteAllText(path, string.Concat(kept.Select(l => l + "\n")));
    }

    /// <summary>
    /// Zeroes the frozen slices' gradients, then adds each trained parameter's gradient to its fp32 master's and drops it
    /// (a parameter that is its own master keeps accumulating in place).
    /// </summary>
    private void MoveGradients()
    {
        task.AfterBackward();
        using var noGrad = no_grad();
        for (var i = 0; i < _masters.Count; i++)
        {
            var parameter = task.Trainable[i].Parameter;
            if (ReferenceEquals(_masters[i], parameter) || parameter.grad is not { } grad)
            {
                continue;
            }

            // Every wrapper is disposed at once: an undisposed one would keep its gradient alive until the GC ran.
            using (grad)
            {
                using var accumulated = _masters[i].grad;
                if (accumulated is not null)
                {
                    accumulated.add_(grad);
                }
                else
                {
                    using var widened = grad.to(ScalarType.Float32);
                    _masters[i].grad = widened;
                }
            }

            parameter.grad = null;
        }
    }

    private static void CopyMastersToModel(IReadOnlyList<TrainableParameter> trainable, IReadOnlyList<Parameter> masters)
    {
        using var noGrad = no_grad();
        for (var i = 0; i < masters.Count; i++)
        {
            if (!ReferenceEquals(masters[i], trainable[i].Parameter))
            {
                trainable[i].Parameter.copy_(masters[i]);
            }
        }
    }

    /// <summary>Optimiser steps for the settings: --steps, else --tokens / batch, else one epoch of the training split.</summary>
    public static long ResolveSteps(TrainingSettings settings, InstanceSplit split) =>
        settings.Steps ?? (settings.Tokens is { } t
            ? Math.Max(1, (t + settings.BatchTokens - 1) / settings.BatchTokens)
            : Math.Max(1, split.TrainCount / settings.InstancesPerStep));
}
