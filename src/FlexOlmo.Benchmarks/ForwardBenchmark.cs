using System.Diagnostics;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

// B=batch, T=tokens

/// <summary>
/// Prefill throughput of the benchmark FlexOlmo (hidden 1024, 8 layers, 8 experts top-2, sequence 512) in fp32 and
/// bf16, as achieved GFLOP/s against the matmul throughput measured in the same run (goal: 70% or better). The
/// matmul peak is the faster of libtorch's square product and the one the model's forward makes (the decode kernel, in
/// fp32 on AMD CPUs with AVX-512, see <c>CpuGemv.OutrunsLibtorch</c>); libtorch's is reported too. Two ratios:
/// <list type="bullet">
/// <item>the best forward against the best single square product over two seconds before them (<c>fraction_of_peak</c>);</item>
/// <item>each forward against a burst of square products of about its length made just before it
/// (<see cref="MatmulBurst"/>), the median and range of those ratios (<c>fraction_of_paired</c>). On a shared host the
/// first compares a forward of seconds with the best tenth of a second of the products, so it reads low when the
/// compute available moves; the second compares like with like, as the decode benchmark pairs each step with a pass.</item>
/// </list>
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
            var libtorchPeak = Baselines.MatmulGflops(dtype, target);
            var peak = Math.Max(libtorchPeak, Baselines.MatmulGflops(dtype, target, inference: true));
            using var burst = new MatmulBurst(dtype, target, inference: true);
            using var model = BenchmarkModel.Create(config, target, dtype);
            using var noGrad = no_grad();
            using var ids = randint(0, config.VocabSize, [batch, tokens], ScalarType.Int64, target); // [B, T]
            var flops = BenchmarkModel.ForwardFlops(config, batch, tokens);
            var seconds = Time(model, ids, target); // warm-up
            var (times, ratios) = (new List<double>(), new List<double>());
            for (var r = 0; r < repeats; r++)
            {
                var mean = burst.Run(Math.Max(0.5, seconds)).Mean;
                seconds = Time(model, ids, target);
                times.Add(seconds);
                ratios.Add(flops / seconds / 1e9 / mean);
            }

            ratios.Sort();
            var best = times.Min();
            var gflops = flops / best / 1e9;
            report.Add(new()
            {
                ["dtype"] = TorchRuntime.Name(dtype),
                ["device"] = target.ToString(),
                ["seconds"] = best,
                ["tokens_per_s"] = batch * tokens / best,
                ["gflops"] = gflops,
                ["matmul_peak_gflops"] = peak,
                ["libtorch_matmul_gflops"] = libtorchPeak,
                ["fraction_of_peak"] = gflops / peak,
                ["fraction_of_paired"] = ratios[ratios.Count / 2],
                ["paired_range"] = FormattableString.Invariant($"{ratios[0]:0.00}-{ratios[^1]:0.00}"),
            });
        }

        report.Save(json);
    }

    /// <summary>Seconds of one forward pass over <paramref name="ids"/>.</summary>
    private static double Time(Olmo2ForCausalLM model, Tensor ids, Device device)
    {
        var watch = Stopwatch.StartNew();
        model.Forward(ids).Dispose();
        Baselines.Synchronize(device);
        return watch.Elapsed.TotalSeconds;
    }
}
