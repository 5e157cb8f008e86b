using System.Diagnostics;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Decode throughput of the benchmark FlexOlmo at batch 1 and 16. Decode is memory-bound, so each step is compared with
/// the time its weights take to stream from memory once: attention, router and lm_head, plus the experts a step is
/// expected to touch (k of E at batch 1; E(1 - (1 - k/E)^B) at batch B, almost all of them at 16). That bound is a pass
/// over those very tensors (<see cref="WeightStream"/>), alternated with the decode runs, and the ratio is the median of
/// the per-round ratios, with its range. The fixed per-token cost outside the matrix work (managed code and op dispatch)
/// is measured on a tiny model of the same depth and op count.
/// </summary>
internal static class DecodeBenchmark
{
    private const int Rounds = 5;

    public static void Run(string device, string[] dtypes, int[] batches, int prompt, int newTokens, string? json)
    {
        var target = TorchRuntime.ResolveDevice(device);
        if (target.type != TorchSharp.DeviceType.CPU)
        {
            throw new ArgumentException("decode: the streaming bound is measured on the CPU only; run it with --device cpu.");
        }

        var report = new Report("decode");
        var config = BenchmarkModel.Config();
        var tiny = BenchmarkModel.Config(hidden: 64, intermediate: 64, vocab: 256);
        report.Note($"prompt {prompt}, {newTokens} new tokens; threads {get_num_threads()}; {Rounds} rounds, each a decode run then a pass over the same weights");
        foreach (var name in dtypes)
        {
            var dtype = TorchRuntime.ResolveDType(name);
            using var model = BenchmarkModel.Create(config, target, dtype);
            using var tinyModel = BenchmarkModel.Create(tiny, target, dtype);
            foreach (var batch in batches)
            {
                var paired = new WeightStream(model, batch).Paired(() => Measure(model, batch, prompt, newTokens), Rounds);
                var overhead = Measure(tinyModel, batch, prompt, newTokens);
                report.Add(new()
                {
                    ["dtype"] = TorchRuntime.Name(dtype),
                    ["batch"] = batch,
                    ["ms_per_step"] = paired.Step * 1000,
                    ["tokens_per_s"] = batch / paired.Step,
                    ["stream_ms_per_step"] = paired.Pass * 1000,
                    ["stream_gbps"] = paired.PassGBps,
                    ["ratio_to_stream"] = paired.Ratio,
                    ["ratio_range"] = $"{paired.RatioMin:0.00}-{paired.RatioMax:0.00}",
                    ["fixed_overhead_ms"] = overhead * 1000,
                    ["overhead_share"] = overhead / paired.Step,
                });
            }
        }

        report.Save(json);
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
