using System.Diagnostics;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Decode throughput of the benchmark FlexOlmo at batch 1 and 16. Decode is memory-bound, so each step is compared with
/// the time its weight bytes take to stream from memory once: attention, router and lm_head, plus the experts a step
/// is expected to touch (k of E at batch 1; E(1 - (1 - k/E)^B) at batch B, almost all of them at 16). The read
/// bandwidth is measured in the same run, before and after, and the best figure is the bound (a shared machine's
/// bandwidth varies; the best makes the ratio conservative). The fixed per-token cost outside the matrix work
/// (managed code and op dispatch) is measured on a tiny model of the same depth and op count.
/// </summary>
internal static class DecodeBenchmark
{
    public static void Run(string device, string[] dtypes, int[] batches, int prompt, int newTokens, string? json)
    {
        var target = TorchRuntime.ResolveDevice(device);
        var report = new Report("decode");
        var config = BenchmarkModel.Config();
        var bandwidth = Baselines.ReadBandwidthGBps(target);
        var rows = new List<(ScalarType DType, int Batch, double PerToken, double Overhead)>();
        var tiny = BenchmarkModel.Config(hidden: 64, intermediate: 64, vocab: 256);
        foreach (var name in dtypes)
        {
            var dtype = TorchRuntime.ResolveDType(name);
            using var model = BenchmarkModel.Create(config, target, dtype);
            using var tinyModel = BenchmarkModel.Create(tiny, target, dtype);
            foreach (var batch in batches)
            {
                rows.Add((dtype, batch, Measure(model, batch, prompt, newTokens), Measure(tinyModel, batch, prompt, newTokens)));
            }
        }

        bandwidth = Math.Max(bandwidth, Baselines.ReadBandwidthGBps(target));
        report.Note($"read bandwidth {bandwidth:0.0} GB/s (best of before and after); prompt {prompt}, {newTokens} new tokens; threads {get_num_threads()}");
        foreach (var (dtype, batch, perToken, overhead) in rows)
        {
            var elementSize = dtype == ScalarType.Float32 ? 4 : 2;
            var streamSeconds = StreamedParameters(config, batch) * elementSize / (bandwidth * 1e9);
            report.Add(new()
            {
                ["dtype"] = TorchRuntime.Name(dtype),
                ["batch"] = batch,
                ["ms_per_step"] = perToken * 1000,
                ["tokens_per_s"] = batch / perToken,
                ["stream_ms_per_step"] = streamSeconds * 1000,
                ["ratio_to_stream"] = perToken / streamSeconds,
                ["fixed_overhead_ms"] = overhead * 1000,
                ["overhead_share"] = overhead / perToken,
            });
        }

        report.Save(json);
    }

    /// <summary>Matmul parameters one step of <paramref name="batch"/> rows reads: the active ones, with the experts the batch is expected to touch.</summary>
    private static double StreamedParameters(ModelConfig c, int batch)
    {
        var touched = c.NumExperts * (1 - Math.Pow(1 - ((double)c.NumExpertsPerTok / c.NumExperts), batch)); // expected distinct experts per layer
        var perExpert = 3.0 * c.HiddenSize * c.IntermediateSize;
        return BenchmarkModel.ActiveMatmulParameters(c) + (c.NumHiddenLayers * (touched - c.NumExpertsPerTok) * perExpert);
    }

    /// <summary>Median seconds per decode step (all rows advance one token), prefill excluded.</summary>
    internal static double Measure(Olmo2ForCausalLM model, int batch, int prompt, int newTokens)
    {
        var generator = new TextGenerator(model, null);
        var requests = Enumerable.Range(0, batch)
            .Select(b => new GenerationRequest(Enumerable.Range(0, prompt).Select(t => ((b * 31) + (t * 7) + 3) % model.Config.VocabSize).ToArray(), new SamplingOptions { MaxNewTokens = newTokens }))
            .ToArray();
        generator.Generate(requests.Select(r => r with { Sampling = r.Sampling with { MaxNewTokens = 2 } }).ToArray()); // warm-up
        var stamps = new List<double>();
        var watch = Stopwatch.StartNew();
        generator.Generate(requests, e =>
        {
            if (e.Row == 0)
            {
                stamps.Add(watch.Elapsed.TotalSeconds);
            }
        });

        // stamps[0] is after the prefill; the rest are one decode step apart. The median step resists the hiccups of a
        // shared machine better than the mean.
        var steps = stamps.Zip(stamps.Skip(1), (a, b) => b - a).Order().ToArray();
        return steps[steps.Length / 2];
    }
}
