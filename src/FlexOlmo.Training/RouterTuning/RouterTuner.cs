using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Data;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;

namespace FlexOlmo.Training.RouterTuning;

/// <summary>What <c>flexolmo tune-router</c> was asked to do.</summary>
public sealed record RouterTuningRequest
{
    public required string Model { get; init; }

    public required IReadOnlyList<string> Data { get; init; }

    public required string Out { get; init; }

    public TrainingSettings Settings { get; init; } = new() { Lr = 2e-3, WeightDecay = 0.1, Warmup = 100 };

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public string? TokenCache { get; init; }
}

/// <summary>
/// <c>flexolmo tune-router</c>: trains only the router rows of a composed model on proxy data, then writes a new
/// composed checkpoint (folder renamed into place when complete) with the sidecar saying so.
/// </summary>
public static class RouterTuner
{
    public static TrainingOutcome Tune(RouterTuningRequest request, IProgress<string>? log, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var config = ModelConfig.Load(request.Model);
        if (!config.IsMoe)
        {
            throw new TrainingException($"{request.Model}: tune-router works on a composed FlexOlmo model (model_type flex_olmo).");
        }

        request.Settings.Validate(config.MaxPositionEmbeddings);
        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, TextEncoding.ForModel(request.Model, config));
        using var data = new TokenDataset(cache.Prepare(DataFiles.Expand(request.Data), TokenWidth.ForVocabulary(config.VocabSize), log, cancellationToken), config.VocabSize);
        var split = new InstanceSplit(data.InstanceCount(request.Settings.SeqLen), request.Settings.ValidationFraction, request.Settings.Seed);
        var steps = TrainingLoop.ResolveSteps(request.Settings, split);
        var device = TorchRuntime.ResolveDevice(request.Device);
        var dtype = TorchRuntime.ResolveDType(request.DType, config.StorageDType);
        Olmo2ForCausalLM tuned;
        using (var checkpoint = SafetensorsCheckpoint.Open(request.Model))
        {
            tuned = CheckpointLoader.Create(config with { NumExpertsPerTok = config.NumExperts }, checkpoint, device, dtype); // every expert active while tuning
        }

        using var model = tuned;
        model.train();
        var work = request.Out + ".tuning";
        var outcome = new TrainingLoop(new RouterTuningTask(model), data, split, request.Settings, steps, device, work).Run(false, progress, cancellationToken);
        if (outcome.Interrupted)
        {
            return outcome;
        }

        AtomicFile.WriteDirectory(request.Out, folder =>
        {
            CheckpointSaver.Save(model, folder, config: config);
            foreach (var file in Directory.EnumerateFiles(request.Model).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal) && !f.EndsWith(".index.json", StringComparison.Ordinal) && Path.GetFileName(f) is not ("config.json" or ComposedSidecar.FileName)))
            {
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            }

            var sidecar = ComposedSidecar.TryLoad(request.Model);
            if (sidecar is not null)
            {
                Tuned(sidecar, outcome).Save(folder);
            }
        });
        Directory.Delete(work, recursive: true);
        return outcome;
    }

    private static ComposedSidecar Tuned(ComposedSidecar sidecar, TrainingOutcome outcome) =>
        sidecar with { RouterTuning = $"router rows tuned for {outcome.Steps} steps on {outcome.Tokens} tokens", Created = DateTimeOffset.UtcNow, Tool = ToolInfo.Current };
}
