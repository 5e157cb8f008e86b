using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Training.Embedding;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Experts;

/// <summary>What <c>flexolmo train-expert</c> was asked to do.</summary>
public sealed record ExpertTrainingRequest
{
    public required string Anchor { get; init; }

    public required IReadOnlyList<string> Data { get; init; }

    public required string Name { get; init; }

    public string Version { get; init; } = "1.0.0";

    public required string Out { get; init; }

    /// <summary>Who owns the expert: published in its manifest, so it is asked for, never guessed from the login name.</summary>
    public required string Owner { get; init; }

    public string License { get; init; } = "LicenseRef-unspecified";

    public string? Description { get; init; }

    /// <summary>A vector for r_i made elsewhere (projected to the model width when needed); null to embed the data with the anchor.</summary>
    public string? RouterEmbedding { get; init; }

    /// <summary>Documents sampled for the domain embedding.</summary>
    public int Samples { get; init; } = 1000;

    public TrainingSettings Settings { get; init; } = new();

    /// <summary>One of the paper's ablations, for studies; <see cref="ExpertAblation.None"/> trains by the method.</summary>
    public ExpertAblation Ablation { get; init; } = ExpertAblation.None;

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    public bool Resume { get; init; }

    /// <summary>Bytes per id in headerless token shards (2 or 4); 0 picks by vocabulary size.</summary>
    public int RawTokenBytes { get; init; }

    public string? TokenCache { get; init; }
}

/// <summary>The package written (null when interrupted) and how training went.</summary>
public sealed record ExpertTrainingResult(ExpertPackage? Package, TrainingOutcome Outcome, ValidationRecord? Validation, string OutFolder);

/// <summary>
/// <c>flexolmo train-expert</c>: trains an owner's FFN expert against a frozen anchor on the owner's own files and
/// writes an expert package (expert.safetensors, then expert.json). The data never leaves the machine: only the
/// expert's weights, router row and bias, and a manifest without data paths, are written.
/// </summary>
public static class ExpertTrainer
{
    private const string InitialEmbeddingFile = "router_embedding.init.safetensors";

    public static ExpertTrainingResult Train(ExpertTrainingRequest request, IProgress<string>? log, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        Naming.CheckName(request.Name);
        Naming.CheckVersion(request.Version);
        Naming.CheckText(request.Owner, "--owner", 200);
        Naming.CheckText(request.License, "--license", 100);
        if (request.Description is { } description && (description.Length > 4000 || description.Any(c => char.IsControl(c) && c is not ('\n' or '\t'))))
        {
            throw new TrainingException("--description must be at most 4000 characters, without control characters other than line breaks and tabs.");
        }
        var anchor = AnchorPackage.Open(request.Anchor);
        CheckOutFolder(request, anchor);
        var anchorConfig = ModelConfig.Load(anchor.ModelFolder);
        if (anchorConfig.IsMoe)
        {
            throw new TrainingException($"{anchor.ModelFolder}: the anchor must be a dense OLMo-2 model, not {anchorConfig.ModelType}.");
        }

        request.Settings.Validate(anchorConfig.MaxPositionEmbeddings);
        var eos = GenerationDefaults.EosTokenIds(anchor.ModelFolder, anchorConfig) is { Count: > 0 } ids
            ? ids[0]
            : throw new TrainingException($"{anchor.ModelFolder}: config.json has no eos_token_id, which is needed to separate documents.");
        var files = DataFiles.Expand(request.Data);
        var cache = new TokenCache(request.TokenCache ?? TokenCache.DefaultFolder, new TextEncoding(() => TokenizerLoader.Load(anchor.ModelFolder, anchorConfig), () => eos));
        var rawBytes = request.RawTokenBytes > 0 ? request.RawTokenBytes : TokenWidth.ForVocabulary(anchorConfig.VocabSize);
        using var data = new TokenDataset(cache.Prepare(files, rawBytes, log, cancellationToken), anchorConfig.VocabSize);
        var settings = request.Settings;
        var split = new InstanceSplit(data.InstanceCount(settings.SeqLen), settings.ValidationFraction, settings.Seed);
        var steps = TrainingLoop.ResolveSteps(settings, split);
        var device = TorchRuntime.ResolveDevice(request.Device);
        var dtype = TorchRuntime.ResolveDType(request.DType, anchorConfig.StorageDType);
        log?.Report($"data: {files.Count} file(s), {data.Documents} documents, {data.TotalTokens} tokens; {split.TrainCount} training and {split.Validation.Count} validation instances of {settings.SeqLen} tokens; {steps} steps");

        var publicRows = RouterEmbeddingFile.ReadRows(anchor.RouterEmbeddingPath, anchorConfig.NumHiddenLayers, anchorConfig.HiddenSize);
        using var weights = SafetensorsCheckpoint.Open(anchor.ModelFolder);
        var initPath = Path.Combine(request.Out, InitialEmbeddingFile);
        float[] ownerEmbedding;
        RouterEmbeddingProvenance provenance;
        if (request.Resume && File.Exists(initPath))
        {
            (ownerEmbedding, var saved) = RouterEmbeddingFile.Read(initPath);
            provenance = saved ?? new RouterEmbeddingProvenance("external", ownerEmbedding.Length);
        }
        else
        {
            (ownerEmbedding, provenance) = InitialEmbedding(request, anchorConfig, weights, publicRows, data, eos, device, dtype, log, cancellationToken);
            Directory.CreateDirectory(request.Out);
            RouterEmbeddingFile.Write(initPath, ownerEmbedding, provenance);
        }

        using var model = ExpertModel.Build(anchorConfig, weights, publicRows, ownerEmbedding, device, dtype);
        model.train();
        var task = new ExpertTrainingTask(model, settings, request.Ablation);
        var loop = new TrainingLoop(task, data, split, settings, steps, device, request.Out);
        log?.Report(loop.Memory.Describe());
        if (!request.Ablation.IsNone)
        {
            log?.Report($"ablation: {request.Ablation.Describe()}");
        }

        var outcome = loop.Run(request.Resume, progress, cancellationToken);
        if (outcome.Interrupted)
        {
            return new ExpertTrainingResult(null, outcome, null, request.Out);
        }

        task.FinishTraining();

        model.eval();
        log?.Report("validation: measuring perplexity of the anchor alone and of anchor + expert");
        var validation = Validate(model, data, split, settings, device, cancellationToken);
        var package = WritePackage(request, anchor, anchorConfig, model, provenance, outcome, validation, steps, loop.Warmup, dtype, data.Documents);
        return new ExpertTrainingResult(package, outcome, validation, request.Out);
    }

    /// <summary>
    /// The output folder must not be the anchor (or hold it, or lie in it), and must not hold an earlier run unless that
    /// run is being resumed: an expert is never written over another one or into the anchor.
    /// </summary>
    private static void CheckOutFolder(ExpertTrainingRequest request, AnchorPackage anchor)
    {
        var output = Path.TrimEndingDirectorySeparator(Path.GetFullPath(request.Out));
        foreach (var protectedFolder in new[] { anchor.Folder, anchor.ModelFolder }.Select(f => Path.TrimEndingDirectorySeparator(Path.GetFullPath(f))))
        {
            if (output == protectedFolder || output.StartsWith(protectedFolder + Path.DirectorySeparatorChar, StringComparison.Ordinal) || protectedFolder.StartsWith(output + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                throw new TrainingException($"--out {request.Out}: overlaps the anchor ({protectedFolder}); an expert must be written to a folder of its own.");
            }
        }

        if (!request.Resume && Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
        {
            throw new TrainingException($"--out {request.Out}: already holds files (an earlier expert or training run); nothing was changed. Continue that run with --resume, or choose an empty --out.");
        }
    }

    private static (float[], RouterEmbeddingProvenance) InitialEmbedding(
        ExpertTrainingRequest request, ModelConfig anchorConfig, SafetensorsCheckpoint weights, IReadOnlyList<float[]> publicRows, TokenDataset data, int eos,
        Device device, ScalarType dtype, IProgress<string>? log, CancellationToken cancellationToken)
    {
        if (request.RouterEmbedding is { } path)
        {
            return RouterEmbeddingSource.FromFile(path, anchorConfig.HiddenSize, request.Settings.Seed, log);
        }

        if (request.Ablation.RouterInit == RouterInit.Random)
        {
            log?.Report("router embedding: a seeded random vector with r_pub's mean norm (ablation: no domain init)");
            return (RandomRow(publicRows, request.Settings.Seed), new RouterEmbeddingProvenance("random", anchorConfig.HiddenSize));
        }

        log?.Report($"router embedding: mean of the anchor's mean-pooled hidden states over up to {request.Samples} documents of the data");
        using var embedder = ExpertModel.Build(anchorConfig, weights, publicRows, publicRows[0], device, dtype);
        embedder.eval();
        var embedding = DomainEmbedder.FromModel(embedder, data, eos, request.Samples, request.Settings.SeqLen, request.Settings.Seed, cancellationToken);
        return (embedding, new RouterEmbeddingProvenance("anchor-mean-hidden", embedding.Length, Samples: request.Samples));
    }

    /// <summary>A seeded Gaussian direction scaled to the mean norm of the public rows, so only its direction differs from a domain embedding's scale.</summary>
    internal static float[] RandomRow(IReadOnlyList<float[]> publicRows, long seed)
    {
        var random = new Random(unchecked((int)seed) ^ 0x5eed);
        var row = new double[publicRows[0].Length];
        for (var i = 0; i < row.Length; i++)
        {
            row[i] = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()); // Box-Muller
        }

        var norm = Math.Sqrt(row.Sum(v => v * v));
        var target = publicRows.Average(r => Math.Sqrt(r.Sum(v => (double)v * v)));
        return row.Select(v => (float)(v / norm * target)).ToArray();
    }

    /// <summary>Held-out perplexity with the public expert alone (exactly the dense anchor) and with both experts.</summary>
    private static ValidationRecord? Validate(Olmo2ForCausalLM model, TokenDataset data, InstanceSplit split, TrainingSettings settings, Device device, CancellationToken cancellationToken)
    {
        if (split.Validation.Count == 0)
        {
            return null;
        }

        using var anchorOnly = ExpertMask.ToRouterBias(Enumerable.Repeat(ExpertSet.Include(2, [ExpertModel.PublicExpert]), settings.MicroBatch).ToArray(), 2, device)!;
        var (tokens, anchorPerplexity) = PerplexityMeter.Measure(
            inputs => model.Forward(inputs, new ForwardOptions { ExpertBias = anchorOnly.narrow(0, 0, inputs.shape[0]) }), data, split.Validation, settings.SeqLen, settings.MicroBatch, device, cancellationToken);
        var (_, expertPerplexity) = PerplexityMeter.Measure(inputs => model.Forward(inputs), data, split.Validation, settings.SeqLen, settings.MicroBatch, device, cancellationToken);
        return new ValidationRecord(tokens, Math.Round(anchorPerplexity, 4), Math.Round(expertPerplexity, 4));
    }

    private static ExpertPackage WritePackage(
        ExpertTrainingRequest request, AnchorPackage anchor, ModelConfig anchorConfig, Olmo2ForCausalLM model, RouterEmbeddingProvenance provenance,
        TrainingOutcome outcome, ValidationRecord? validation, long steps, long warmup, ScalarType dtype, long documents)
    {
        var storage = TensorBytes.ToSafetensors(dtype);
        var tensors = new List<TensorToWrite>();
        foreach (var (layer, index) in model.Model.Layers.Select((l, i) => (l, i)))
        {
            var moe = layer.Moe!;
            var expert = moe.Experts[ExpertModel.OwnerExpert];
            foreach (var (projection, linear) in new[] { ("gate_proj", expert.GateProj), ("up_proj", expert.UpProj), ("down_proj", expert.DownProj) })
            {
                tensors.Add(new TensorToWrite(ExpertTensorNames.Ffn(index, projection), storage, linear.Weight.shape, s => TensorBytes.Write(linear.Weight, dtype, s)));
            }

            tensors.Add(new TensorToWrite(ExpertTensorNames.RouterEmbedding(index), storage, [anchorConfig.HiddenSize], s => TensorBytes.Write(moe.Gate.Weight[ExpertModel.OwnerExpert], dtype, s)));
            tensors.Add(new TensorToWrite(ExpertTensorNames.RouterBias(index), SafetensorsDType.F32, [1], s => TensorBytes.Write(moe.RouterBias!.narrow(0, ExpertModel.OwnerExpert, 1), ScalarType.Float32, s)));
        }

        SafetensorsWriter.WriteFile(Path.Combine(request.Out, ExpertTensorNames.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "flexolmo-expert" });
        var manifest = new ExpertManifest(
            request.Name,
            request.Version,
            request.Owner,
            request.License,
            new AnchorReference(anchor.Fingerprint, anchor.Manifest.Value.Name),
            new Architecture(anchorConfig.ModelType, anchorConfig.HiddenSize, anchorConfig.IntermediateSize, anchorConfig.NumHiddenLayers, anchorConfig.VocabSize),
            provenance,
            new TrainingRecord(
                outcome.Steps, outcome.Tokens, request.Settings.SeqLen, request.Settings.BatchTokens, request.Settings.Lr, warmup, request.Settings.Seed,
                TorchRuntime.Name(dtype), request.Device, documents, validation, request.Ablation.IsNone ? null : request.Ablation.Describe()),
            [FileDigest.Compute(request.Out, ExpertTensorNames.WeightsFile)],
            DateTimeOffset.UtcNow,
            ToolInfo.Current,
            request.Description);
        SignedDocument<ExpertManifest>.Create(manifest, SchemaValidator.ExpertManifest, key: null).Save(Path.Combine(request.Out, ExpertManifest.FileName));
        return ExpertPackage.Open(request.Out);
    }
}
