using FlexOlmo.Composition;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Data;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Training;
using FlexOlmo.Training.Experts;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// The scale ladder (real-size issue): random OLMo-2 anchors in bf16 from tiny to 1B, each taken through the jobs a user
/// runs. Per rung: expert training (seconds per trained token, MFU against the bf16 matmul peak, peak resident memory
/// against the memory plan's floor), compose of the anchor and three experts against `cp` of the same bytes (and the
/// memory it adds to the process), and batch-1 decode of the composed model against streaming its active weights once (and its peak
/// memory against the model's bytes). Then, per figure, the exponent of its growth with the parameter count, by least
/// squares on the logarithms: 1 is linear, 0 flat.
/// </summary>
internal static class ScaleBenchmark
{
    public static readonly string[] Names = ["tiny", "demo", "150m", "1b"];

    private const int Experts = 3;

    /// <summary>A yes/no figure (1 when the memory plan chose activation checkpointing): reported, not fitted.</summary>
    private const string Checkpointing = "train_checkpointing";

    public static void Run(string[] sizes, int seqLen, int microBatch, int steps, string? json)
    {
        var unknown = sizes.Except(Names).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"--sizes: unknown {string.Join(", ", unknown)}; the rungs are {string.Join(", ", Names)}.");
        }

        var report = new Report("scale");
        var peak = Baselines.MatmulGflops(ScalarType.BFloat16, CPU);
        report.Note($"bf16 matmul peak {peak:0} GFLOP/s, threads {get_num_threads()}; training at sequence {seqLen}, micro-batch {microBatch}, {steps} steps (the first not timed); compose of the anchor + {Experts} experts, top-2");
        var rows = new List<(string Name, long Parameters, Dictionary<string, double> Figures)>();
        foreach (var name in Names.Where(sizes.Contains))
        {
            var config = Config(name);
            using var temp = new TrainBenchmark.TempFolder();
            CheckFreeSpace(temp.Path, config, name);
            var figures = Rung(config, temp.Path, Math.Min(seqLen, config.MaxPositionEmbeddings), microBatch, steps, peak);
            var parameters = RandomCheckpoint.Parameters(config);
            rows.Add((name, parameters, figures));
            var row = new Dictionary<string, object> { ["rung"] = name, ["parameters"] = parameters };
            foreach (var (key, value) in figures)
            {
                row[key] = value;
            }

            report.Add(row);
        }

        if (rows.Count >= 2)
        {
            var x = rows.Select(r => Math.Log(r.Parameters)).ToArray();
            foreach (var figure in rows[0].Figures.Keys.Where(f => f != Checkpointing))
            {
                var y = rows.Select(r => Math.Log(Math.Max(r.Figures[figure], 1e-12))).ToArray();
                report.Add(new() { ["figure"] = figure, ["exponent_in_parameters"] = Slope(x, y) });
            }
        }

        report.Save(json);
    }

    /// <summary>The anchor of each rung: the two real presets, and two smaller shapes on the demo's vocabulary and the 1B's.</summary>
    internal static ModelConfig Config(string name) => name switch
    {
        "tiny" => ModelPresets.Get("demo") with { HiddenSize = 64, IntermediateSize = 256, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 4, HeadDim = 16 },
        "demo" => ModelPresets.Get("demo"),
        "150m" => ModelPresets.Get("olmo2-1b") with { HiddenSize = 512, IntermediateSize = 2048, NumHiddenLayers = 12, NumAttentionHeads = 8, NumKeyValueHeads = 8, HeadDim = 64 },
        "1b" => ModelPresets.Get("olmo2-1b"),
        _ => throw new ArgumentException($"unknown rung {name}"),
    };

    private static Dictionary<string, double> Rung(ModelConfig config, string root, int seqLen, int microBatch, int steps, double peakGflops)
    {
        var figures = new Dictionary<string, double>();
        var anchorFolder = Path.Combine(root, "anchor");
        RandomCheckpoint.Write(config, Path.Combine(anchorFolder, AnchorPackage.ModelFolderName), ScalarType.BFloat16, seed: 1);
        var architecture = new Architecture(config.ModelType, config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers, config.VocabSize);
        var anchor = ComposeBenchmark.SealAnchor(anchorFolder, architecture);

        var experts = Enumerable.Range(0, Experts).Select(i => ComposeBenchmark.MakeExpert(Path.Combine(root, $"expert{i}"), $"expert{i}", anchor, i + 2, architecture)).ToList();
        var recipe = Path.Combine(root, "recipe.yaml");
        File.WriteAllText(recipe, $"name: scale\nanchor: {{ source: {anchorFolder} }}\nexperts:\n" + string.Join("", experts.Select(e => $"  - source: {e}\n")) + "experts_per_token: 2\ndtype: bfloat16\n");
        var sources = Directory.EnumerateFiles(anchor.ModelFolder, "*.safetensors").Concat(experts.Select(e => Path.Combine(e, ExpertTensorNames.WeightsFile))).ToList();
        var cp = ComposeBenchmark.Best(() =>
        {
            var target = Directory.CreateDirectory(Path.Combine(root, "cp-" + Guid.NewGuid().ToString("N"))).FullName;
            for (var i = 0; i < sources.Count; i++)
            {
                ComposeBenchmark.Run("cp", [sources[i], Path.Combine(target, $"{i}-{Path.GetFileName(sources[i])}")]);
            }

            return target;
        });
        var before = PeakMemory.Reset();
        var compose = ComposeBenchmark.Best(() =>
        {
            var target = Path.Combine(root, "composed-" + Guid.NewGuid().ToString("N"));
            Composer.ComposeAsync(Recipe.Load(recipe), target, null, null, CancellationToken.None).GetAwaiter().GetResult();
            return target;
        });
        figures["compose_s"] = compose;
        figures["compose_ratio_to_cp"] = compose / cp;
        figures["compose_added_rss_mib"] = (PeakMemory.Read() - before) / (double)(1 << 20); // above what the process held before

        var composed = Path.Combine(root, "composed");
        Composer.ComposeAsync(Recipe.Load(recipe), composed, null, null, CancellationToken.None).GetAwaiter().GetResult();
        var modelBytes = Directory.EnumerateFiles(composed, "*.safetensors").Sum(f => new FileInfo(f).Length);
        PeakMemory.Reset();
        using (var model = CheckpointLoader.Load(composed, CPU, ScalarType.BFloat16))
        {
            model.eval();
            var paired = DecodeBenchmark.MeasurePaired(model, new WeightStream(model, 1), 1, 32, 16, 3);
            figures["decode_ms_per_token"] = paired.Step * 1000;
            figures["decode_ratio_to_stream"] = paired.Ratio;
        }

        figures["decode_peak_rss_over_model_bytes"] = PeakMemory.Read() / (double)modelBytes;
        Directory.Delete(composed, recursive: true);

        // Last, so that what training leaves allocated in the process does not hide what compose and decode need.
        Train(config, anchor, root, seqLen, microBatch, steps, peakGflops, figures);
        return figures;
    }

    /// <summary>train-expert's own model, task and loop on random tokens: seconds per token, MFU and peak memory against the plan.</summary>
    private static void Train(ModelConfig anchorConfig, AnchorPackage anchor, string root, int seqLen, int microBatch, int steps, double peakGflops, Dictionary<string, double> figures)
    {
        var tokens = Path.Combine(root, "tokens.bin");
        var random = new Random(1);
        var count = (long)seqLen * microBatch * (steps + 2) * 2;
        using (var file = File.Create(tokens))
        {
            var ids = new byte[count * 4];
            for (long i = 0; i < count; i++)
            {
                BitConverter.TryWriteBytes(ids.AsSpan((int)(i * 4), 4), (uint)random.Next(anchorConfig.VocabSize - 2));
            }

            file.Write(ids);
        }

        PeakMemory.Reset();
        using var weights = SafetensorsCheckpoint.Open(anchor.ModelFolder);
        var embedding = Enumerable.Range(0, anchorConfig.HiddenSize).Select(i => (float)Math.Sin(i) / 16).ToArray();
        using var model = ExpertModel.Build(anchorConfig, weights, embedding, embedding.Select(v => -v).ToArray(), CPU, ScalarType.BFloat16);
        model.train();
        var settings = new TrainingSettings { SeqLen = seqLen, BatchTokens = (long)seqLen * microBatch, MicroBatch = microBatch, Steps = steps, Lr = 9e-4, Warmup = 1, ValidationFraction = 0, CheckpointEvery = 0 };
        using var data = new TokenDataset([new TokenSource(tokens, 0, count, 4, 0)], anchorConfig.VocabSize);
        var split = new InstanceSplit(data.InstanceCount(seqLen), 0, 1);
        var times = new List<double>();
        var loop = new TrainingLoop(new ExpertTrainingTask(model, settings), data, split, settings, steps, CPU, Path.Combine(root, "train"));
        loop.Run(false, new TrainBenchmark.Reporter(p => times.Add(p.ElapsedSeconds)), CancellationToken.None);
        var perStep = (times[^1] - times[0]) / (times.Count - 1); // the first step warms up
        var perToken = perStep / settings.BatchTokens;
        var gflops = TrainBenchmark.FlopsPerToken(ExpertModel.ConfigFor(anchorConfig), seqLen) / perToken / 1e9;
        figures["train_us_per_token"] = perToken * 1e6;
        figures["train_mfu"] = gflops / peakGflops;
        var peak = PeakMemory.Read();
        figures["train_peak_rss_gib"] = peak / (double)(1L << 30);
        figures["train_peak_over_floor"] = peak / (double)loop.Memory.FloorBytes;
        figures[Checkpointing] = loop.Memory.Checkpointing ? 1 : 0;
    }

    /// <summary>Anchor, experts, two composed copies and cp's copy at once, with a margin: an error naming the folder when they do not fit.</summary>
    private static void CheckFreeSpace(string folder, ModelConfig config, string name)
    {
        var anchor = RandomCheckpoint.Bytes(config, ScalarType.BFloat16);
        var expert = 2L * 3 * config.HiddenSize * config.IntermediateSize * config.NumHiddenLayers;
        var composed = anchor + (Experts * expert);
        var needed = (long)(1.1 * (anchor + (Experts * expert) + (3 * composed)));
        var free = new DriveInfo(folder).AvailableFreeSpace;
        if (free < needed)
        {
            throw new IOException($"rung {name} needs {needed / 1e9:0.0} GB in {Path.GetDirectoryName(folder)} and {free / 1e9:0.0} GB are free: set TMPDIR to a larger disk, or leave {name} out of --sizes.");
        }
    }

    private static double Slope(double[] x, double[] y)
    {
        var mx = x.Average();
        var my = y.Average();
        return x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my)) / x.Sum(v => (v - mx) * (v - mx));
    }
}
