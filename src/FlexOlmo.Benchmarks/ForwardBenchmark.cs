using System.Diagnostics;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

// B=batch, T=tokens

/// <summary>
/// Prefill throughput of the benchmark FlexOlmo (hidden 1024, 8 layers, 8 experts top-2, sequence 512) in fp32 and
/// bf16, as achieved GFLOP/s and as a fraction of the matmul peak measured in the same run. Goal: 50% or better.
/// </summary>
internal static class ForwardBenchmark
{
    public static void Run(string device, string[] dtypes, int batch, int tokens, int repeats, string? json)
    {
        var target = TorchRuntime.ResolveDevice(device);
        var report = new Report("forward");
        var config = BenchmarkModel.Config();
        report.Note($"model: hidden {config.HiddenSize}, {config.NumHiddenLayers} layers, {config.NumExperts} experts top-{config.NumExpertsPerTok}, intermediate {config.IntermediateSize}, vocab {config.VocabSize}; batch {batch} x {tokens} tokens; threads {get_num_threads()}");
        foreach (var name in dtypes)
        {
            var dtype = TorchRuntime.ResolveDType(name);
            var peak = Baselines.MatmulGflops(dtype, target);
            using var model = BenchmarkModel.Create(config, target, dtype);
            using var noGrad = no_grad();
            using var ids = randint(0, config.VocabSize, [batch, tokens], ScalarType.Int64, target); // [B, T]
            model.Forward(ids).Dispose(); // warm-up
            Baselines.Synchronize(target);
            var times = new List<double>();
            for (var r = 0; r < repeats; r++)
            {
                var watch = Stopwatch.StartNew();
                model.Forward(ids).Dispose();
                Baselines.Synchronize(target);
                times.Add(watch.Elapsed.TotalSeconds);
            }

            var best = times.Min();
            var gflops = BenchmarkModel.ForwardFlops(config, batch, tokens) / best / 1e9;
            report.Add(new()
            {
                ["dtype"] = TorchRuntime.Name(dtype),
                ["device"] = target.ToString(),
                ["seconds"] = best,
                ["tokens_per_s"] = batch * tokens / best,
                ["gflops"] = gflops,
                ["matmul_peak_gflops"] = peak,
                ["fraction_of_peak"] = gflops / peak,
            });
        }

        report.Save(json);
    }
}
