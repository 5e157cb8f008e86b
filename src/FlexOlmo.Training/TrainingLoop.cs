using System.Diagnostics;
using System.Text.Json;
using FlexOlmo.Data;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

// B=instances per micro-batch, L=sequence length

/// <summary>
/// The optimisation loop every training job shares: AdamW (betas 0.9/0.95), linear warm-up then cosine decay,
/// gradient accumulation to the batch size, gradient clipping, fp32 master copies when the model computes in bf16,
/// resumable checkpoints every N steps and on interruption, metrics.jsonl and progress reports. The data order
/// depends only on the seed and the step, so a resumed run continues exactly where it stopped.
/// </summary>
public sealed class TrainingLoop(ITrainingTask task, TokenDataset data, InstanceSplit split, TrainingSettings settings, long totalSteps, Device device, string outputFolder)
{
    public const string MetricsFile = "metrics.jsonl";

    public long TotalSteps => totalSteps;

    public long Warmup => settings.Warmup ?? Math.Min(2000, Math.Max(1, totalSteps / 10));

    public TrainingOutcome Run(bool resume, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var trainable = task.Trainable;
        var masters = trainable.Select(t => t.Parameter.dtype == ScalarType.Float32
            ? t.Parameter
            : new Parameter(t.Parameter.detach().to(ScalarType.Float32).clone())).ToList();
        // One parameter group per (decay, learning-rate scale), in first-seen order so a resume finds the same groups.
        var groupKeys = trainable.Select(t => (t.Decay, t.LrScale)).Distinct().ToList();
        var groups = groupKeys.Select(k => new AdamW.ParamGroup(
            masters.Where((_, i) => (trainable[i].Decay, trainable[i].LrScale) == k).ToList(),
            new AdamW.Options { weight_decay = k.Decay ? settings.WeightDecay : 0.0, LearningRate = settings.Lr * k.LrScale })).ToList();
        using var optimizer = optim.AdamW(groups, settings.Lr, settings.Beta1, settings.Beta2, 1e-8, settings.WeightDecay);
        var schedule = new LearningRateSchedule(settings.Lr, Warmup, totalSteps, settings.FinalLrRatio);
        var checkpointFolder = Path.Combine(outputFolder, TrainingCheckpoint.FolderName);
        var named = trainable.Select((t, i) => (t.Name, (Tensor)masters[i])).ToList();
        var key = settings.ResumeKey(totalSteps);
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
            foreach (var (group, index) in optimizer.ParamGroups.Select((g, i) => (g, i)))
            {
                group.LearningRate = lr * groupKeys[index].LrScale;
            }

            optimizer.zero_grad();
            foreach (var t in trainable)
            {
                t.Parameter.grad = null;
            }

            double stepLoss = 0;
            double stepCrossEntropy = 0;
            for (var start = 0; start < perStep; start += settings.MicroBatch)
            {
                using var scope = NewDisposeScope();
                var count = Math.Min(settings.MicroBatch, perStep - start);
                var instances = Enumerable.Range(start, count).Select(j => split.TrainInstanceAt((step * perStep) + j)).ToArray();
                var batch = Batches.Make(data, instances, settings.SeqLen, device); // [B, L+1]
                var (total, crossEntropy) = task.Loss(batch);
                var weight = (double)count / perStep;
                (total * weight).backward();
                stepLoss += total.item<float>() * weight;
                stepCrossEntropy += crossEntropy.item<float>() * weight;
            }

            task.AfterBackward();
            for (var i = 0; i < masters.Count; i++)
            {
                if (!ReferenceEquals(masters[i], trainable[i].Parameter))
                {
                    using var grad = trainable[i].Parameter.grad;
                    masters[i].grad = grad?.to(ScalarType.Float32);
                }
            }

            var gradNorm = settings.GradClip > 0 ? nn.utils.clip_grad_norm_(masters, settings.GradClip) : double.NaN;
            optimizer.step();
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
