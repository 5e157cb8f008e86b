using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Native;
using FlexOlmo.Data;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Training;
using FlexOlmo.Training.Experts;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Expert-training throughput (train-expert's own loop and task) for a hidden-512, 8-layer anchor at sequence 512, as
/// model-FLOP utilisation against the matmul peak measured in the same run. Goal: 35% or better.
/// </summary>
/// <remarks>
/// FLOPs counted per token, for the work the step really needs: forward 2 x (attention + router + both experts +
/// lm_head) + causal attention scores; backward input gradients through the same matrices (2x) and scores (2x);
/// weight gradients (2x) only for what is trained (the owner's FFN and the router). Frozen weights need none.
/// </remarks>
internal static class TrainBenchmark
{
    public static void Run(string device, string[] dtypes, int steps, int microBatch, string? json)
    {
        var target = TorchRuntime.ResolveDevice(device);
        var report = new Report("train-expert");
        var anchorConfig = BenchmarkModel.Config(hidden: 512, layers: 8, intermediate: 1536) with { ModelType = ModelConfig.Olmo2, NumExperts = 0, NumExpertsPerTok = 0, NumAttentionHeads = 8, NumKeyValueHeads = 8, EosTokenIds = [0] };
        const int SeqLen = 512;
        using var temp = new TempFolder();
        using (var dense = BenchmarkModel.Create(anchorConfig, CPU, ScalarType.Float32))
        {
            CheckpointSaver.Save(dense, temp.Path);
        }

        var tokens = Path.Combine(temp.Path, "tokens.bin");
        var random = new Random(1);
        File.WriteAllBytes(tokens, Enumerable.Range(0, 2_000_000).SelectMany(_ => BitConverter.GetBytes((ushort)random.Next(anchorConfig.VocabSize))).ToArray());
        report.Note($"anchor: hidden 512, 8 layers, 8 heads, intermediate 1536, vocab {anchorConfig.VocabSize}; expert training at sequence {SeqLen}, micro-batch {microBatch}; threads {get_num_threads()}");
        foreach (var name in dtypes)
        {
            var dtype = TorchRuntime.ResolveDType(name);
            var peak = Baselines.MatmulGflops(dtype, target);
            using var weights = SafetensorsCheckpoint.Open(temp.Path);
            var embedding = Enumerable.Range(0, 512).Select(i => (float)Math.Sin(i) / 16).ToArray();
            using var model = ExpertModel.Build(anchorConfig, weights, embedding, embedding.Select(v => -v).ToArray(), target, dtype);
            model.train();
            var settings = new TrainingSettings { SeqLen = SeqLen, BatchTokens = SeqLen * microBatch, MicroBatch = microBatch, Steps = steps + 2, Lr = 9e-4, Warmup = 1, ValidationFraction = 0, CheckpointEvery = 0 };
            using var data = new TokenDataset([new TokenSource(tokens, 0, 2_000_000, 2, 0)], anchorConfig.VocabSize);
            var split = new InstanceSplit(data.InstanceCount(SeqLen), 0, 1);
            var times = new List<double>();
            var progress = new Reporter(p => times.Add(p.ElapsedSeconds));
            new TrainingLoop(new ExpertTrainingTask(model, settings), data, split, settings, steps + 2, target, Path.Combine(temp.Path, "run-" + name)).Run(false, progress, CancellationToken.None);
            var seconds = (times[^1] - times[1]) / (times.Count - 2); // the first two steps warm up
            var tokensPerStep = (double)SeqLen * microBatch;
            var flops = FlopsPerToken(ExpertModel.ConfigFor(anchorConfig), SeqLen) * tokensPerStep;
            report.Add(new()
            {
                ["dtype"] = TorchRuntime.Name(dtype),
                ["seconds_per_step"] = seconds,
                ["tokens_per_s"] = tokensPerStep / seconds,
                ["model_gflops"] = flops / seconds / 1e9,
                ["matmul_peak_gflops"] = peak,
                ["mfu"] = flops / seconds / 1e9 / peak,
            });
        }

        report.Save(json);
    }

    /// <summary>Model FLOPs of expert training per token (recomputation under activation checkpointing not counted, as MFU is defined).</summary>
    internal static double FlopsPerToken(ModelConfig c, int seqLen)
    {
        var attention = 2.0 * ((long)c.HiddenSize * c.QueryWidth * 2 + (long)c.HiddenSize * c.KeyValueWidth * 2);
        var router = 2.0 * c.NumExperts * c.HiddenSize;
        var expert = 2.0 * 3 * c.HiddenSize * c.IntermediateSize;
        var scores = 2.0 * seqLen * c.QueryWidth; // QK^T and AV over the causal half
        var head = 2.0 * c.VocabSize * c.HiddenSize;
        var forward = (c.NumHiddenLayers * (attention + router + (2 * expert) + scores)) + head;
        var backwardInputs = (c.NumHiddenLayers * (attention + router + (2 * expert) + (2 * scores))) + head;
        var backwardWeights = c.NumHiddenLayers * (expert + router);
        return forward + backwardInputs + backwardWeights;
    }

    internal sealed class Reporter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    internal sealed class TempFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("flexolmo-bench-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
