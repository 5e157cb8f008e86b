using System.Text.Json.Nodes;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Formats;

namespace FlexOlmo.Training.Pretraining;

/// <summary>What <c>flexolmo pretrain</c> was asked to do.</summary>
public sealed record PretrainRequest
{
    /// <summary>A config.json; or give <see cref="Preset"/>.</summary>
    public string? Config { get; init; }

    /// <summary>A named shape (<see cref="ModelPresets"/>) instead of <see cref="Config"/>.</summary>
    public string? Preset { get; init; }

    public required IReadOnlyList<string> Data { get; init; }

    public required string Out { get; init; }

    /// <summary>dolma2, or a tokenizer.json path; null for dolma2 when the vocabulary is dolma2's.</summary>
    public string? Tokenizer { get; init; }

    public TrainingSettings Settings { get; init; } = new() { WeightDecay = 0.1, Lr = 3e-3 };

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "float32";

    public bool Resume { get; init; }

    public int RawTokenBytes { get; init; }

    public string? TokenCache { get; init; }
}

/// <summary>
/// <c>flexolmo pretrain</c>: trains a small dense OLMo-2 from scratch (all weights, weight decay 0.1) and writes it as
/// a Hugging Face checkpoint folder with its tokenizer, ready for prepare-anchor. For users without a public model,
/// the demo, and tests.
/// </summary>
public static class Pretrainer
{
    public static (TrainingOutcome Outcome, double? ValidationPerplexity) Train(PretrainRequest request, IProgress<string>? log, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var (config, source) = ModelPresets.Resolve(request.Preset, request.Config);
        if (config.IsMoe)
        {
            throw new TrainingException($"{source}: pretrain builds a dense model; set model_type to \"olmo2\".");
        }

        if (config.EosTokenIds.Count == 0)
        {
            throw new TrainingException($"{source}: field 'eos_token_id' is missing; documents are separated by it.");
        }

        request.Settings.Validate(config.MaxPositionEmbeddings);
        var tokenizer = request.Tokenizer is not null ? TokenizerLoader.FromName(request.Tokenizer)
            : config.VocabSize >= Dolma2Tokenizer.MinimumVocabulary ? new Dolma2Tokenizer()
            : throw new TrainingException($"{source}: vocabulary {config.VocabSize} is not dolma2's; give --tokenizer PATH/tokenizer.json.");
        if (tokenizer.VocabularySize > config.VocabSize)
        {
            throw new TrainingException($"--tokenizer {tokenizer.Name} has {tokenizer.VocabularySize} ids but the config's vocab_size is {config.VocabSize}.");
        }

        var eos = config.EosTokenIds[0];
        var files = DataFiles.Expand(request.Data);
        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, new TextEncoding(tokenizer, eos));
        using var data = new TokenDataset(cache.Prepare(files, request.RawTokenBytes > 0 ? request.RawTokenBytes : TokenWidth.ForVocabulary(config.VocabSize), log, cancellationToken), config.VocabSize);
        var settings = request.Settings;
        var split = new InstanceSplit(data.InstanceCount(settings.SeqLen), settings.ValidationFraction, settings.Seed);
        var steps = TrainingLoop.ResolveSteps(settings, split);
        log?.Report($"data: {files.Count} file(s), {data.Documents} documents, {data.TotalTokens} tokens; {split.TrainCount} training instances; {steps} steps");
        var device = TorchRuntime.ResolveDevice(request.Device);
        var dtype = TorchRuntime.ResolveDType(request.DType);
        using var model = new Olmo2ForCausalLM(config, device, dtype);
        model.InitializeWeights(settings.Seed);
        model.train();
        var loop = new TrainingLoop(new PretrainingTask(model), data, split, settings, steps, device, request.Out);
        log?.Report(loop.Memory.Describe());
        var outcome = loop.Run(request.Resume, progress, cancellationToken);
        if (outcome.Interrupted)
        {
            return (outcome, null);
        }

        model.eval();
        var (_, perplexity) = PerplexityMeter.Measure(x => model.Forward(x), data, split.Validation, settings.SeqLen, settings.MicroBatch, device, cancellationToken);
        CheckpointSaver.Save(model, request.Out);
        if (tokenizer is HfJsonTokenizer && File.Exists(tokenizer.Name))
        {
            File.Copy(tokenizer.Name, Path.Combine(request.Out, HfJsonTokenizer.FileName), overwrite: true);
        }

        var generation = new JsonObject { ["eos_token_id"] = eos, ["pad_token_id"] = config.PadTokenId, ["do_sample"] = false };
        AtomicFile.WriteAllText(Path.Combine(request.Out, "generation_config.json"), generation.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
        return (outcome, double.IsNaN(perplexity) ? null : perplexity);
    }
}
