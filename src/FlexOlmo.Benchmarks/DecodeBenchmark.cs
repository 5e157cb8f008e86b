using System.Diagnostics;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Decode throughput of the benchmark FlexOlmo at batch 1 and 16. Decode is memory-bound, so each step is compared with
/// the time its weights take to stream from memory once: attention, router and lm_head, plus the experts a step is
/// expected to touch (k of E at batch 1; E(1 - (1 - k/E)^B) at batch B, almost all of them at 16). That bound is a pass
/// over those very tensors (<see cref="WeightStream"/>) made just before each step, and the ratio is the median of the
/// per-step ratios, with their interquartile range. The fixed per-token cost outside the matrix work (managed code and op dispatch)
/// is measured on a tiny model of the same depth and op count. The steps' own passes over weights are timed too
/// (<see cref="PassProfile"/>), by size, so the gap to the bound splits into the passes' streaming and the rest.
/// </summary>
internal static class DecodeBenchmark
{
    private const int Rounds = 3;

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
        report.Note($"prompt {prompt}, {newTokens} new tokens; threads {get_num_threads()}; {Rounds} runs; each step paired with a pass over its weights made just before it");
        foreach (var name in dtypes)
        {
            var dtype = TorchRuntime.ResolveDType(name);
            using var model = BenchmarkModel.Create(config, target, dtype);
            using var tinyModel = BenchmarkModel.Create(tiny, target, dtype);
            foreach (var batch in batches)
            {
                var paired = MeasurePaired(model, new WeightStream(model, batch), batch, prompt, newTokens, Rounds);
                var overhead = Measure(tinyModel, batch, prompt, newTokens);
                var passes = paired.Passes.Aggregate(default(PassTotals), (a, b) => a.Plus(b)); // every class together
                report.Add(new()
                {
                    ["dtype"] = TorchRuntime.Name(dtype),
                    ["batch"] = batch,
                    ["ms_per_step"] = paired.Step * 1000,
                    ["tokens_per_s"] = batch / paired.Step,
                    ["stream_ms_per_step"] = paired.Pass * 1000,
                    ["stream_gbps"] = paired.PassGBps,
                    ["ratio_to_stream"] = paired.Ratio,
                    ["ratio_iqr"] = $"{paired.RatioLow:0.00}-{paired.RatioHigh:0.00}",
                    ["fixed_overhead_ms"] = overhead * 1000,
                    ["overhead_share"] = overhead / paired.Step,
                    ["passes_ms_per_step"] = passes.Time.TotalMilliseconds / paired.Steps,
                    ["passes_gbps"] = passes.BytesPerSecond / 1e9, // 0 without any
                    ["passes_by_size"] = string.Join("; ", paired.Passes.Where(c => c.Passes > 0).Select(c => Describe(c, paired.Steps))),
                });
            }
        }

        report.Save(json);
    }

    /// <summary>Median seconds per decode step (all rows advance one token), prefill excluded.</summary>
    internal static double Measure(Olmo2ForCausalLM model, int batch, int prompt, int newTokens) =>
        Median(Steps(model, batch, prompt, newTokens, null).Select(p => p.Step).ToList());

    /// <summary>
    /// Decode steps each paired with a pass over the weights made just before it (<see cref="WeightStream"/>), over
    /// <paramref name="rounds"/> runs: the medians of the step, of the pass and of their per-step ratio, with the ratio's
    /// interquartile range. Pairing each step with its own pass, a few milliseconds apart, keeps the machine's drifting
    /// bandwidth out of the ratio.
    /// </summary>
    internal static PairedResult MeasurePaired(Olmo2ForCausalLM model, WeightStream stream, int batch, int prompt, int newTokens, int rounds)
    {
        stream.Pass();
        var pairs = new List<(double Step, double Pass)>();
        var passes = new PassTotals[PassProfile.UpperBytes.Count];
        PassProfile.Enabled = true;
        try
        {
            for (var round = 0; round < rounds; round++)
            {
                pairs.AddRange(Steps(model, batch, prompt, newTokens, stream)); // resets the profile after the prefill
                passes = passes.Zip(PassProfile.Snapshot(), (a, b) => a.Plus(b)).ToArray();
            }
        }
        finally
        {
            PassProfile.Enabled = false;
        }

        var ratios = pairs.Select(p => p.Step / p.Pass).Order().ToList();
        var pass = Median(pairs.Select(p => p.Pass).ToList());
        return new(Median(pairs.Select(p => p.Step).ToList()), pass, Median(ratios), ratios[ratios.Count / 4], ratios[ratios.Count * 3 / 4], stream.Bytes / pass / 1e9, passes, pairs.Count);
    }

    /// <summary>"1-4 MiB: 9.0 passes, 18.9 MB, 0.52 ms, 36 GB/s" per step: one size class of the steps' passes.</summary>
    private static string Describe(PassTotals c, int steps)
    {
        var lower = PassProfile.UpperBytes.TakeWhile(b => b < c.UpperBytes).LastOrDefault();
        var range = c.UpperBytes == long.MaxValue ? $">={lower >> 20} MiB" : $"{lower >> 20}-{c.UpperBytes >> 20} MiB";
        return FormattableString.Invariant($"{range}: {(double)c.Passes / steps:0.0} passes, {c.Bytes / 1e6 / steps:0.0} MB, {c.Time.TotalMilliseconds / steps:0.00} ms, {c.BytesPerSecond / 1e9:0} GB/s");
    }

    /// <summary>Seconds of each decode step of one run (prefill excluded), each after a pass over the weights when <paramref name="stream"/> is given.</summary>
    private static List<(double Step, double Pass)> Steps(Olmo2ForCausalLM model, int batch, int prompt, int newTokens, WeightStream? stream)
    {
        var generator = new TextGenerator(model, null);
        var requests = Enumerable.Range(0, batch)
            .Select(b => new GenerationRequest(Enumerable.Range(0, prompt).Select(t => ((b * 31) + (t * 7) + 3) % model.Config.VocabSize).ToArray(), new SamplingOptions { MaxNewTokens = newTokens }))
            .ToArray();
        generator.Generate(requests.Select(r => r with { Sampling = r.Sampling with { MaxNewTokens = 2 } }).ToArray()); // warm-up
        var pairs = new List<(double, double)>();
        var watch = Stopwatch.StartNew();
        double? stepStart = null;
        var pass = 0.0;
        generator.Generate(requests, e =>
        {
            if (e.Row != 0)
            {
                return;
            }

            // The first event comes after the prefill; from then on, one step apart (the pass in between not counted).
            var now = watch.Elapsed.TotalSeconds;
            if (stepStart is { } start)
            {
                pairs.Add((now - start, pass));
            }
            else
            {
                PassProfile.Reset(); // the decode steps' passes only
            }

            pass = stream?.Pass() ?? 0;
            stepStart = watch.Elapsed.TotalSeconds;
        });
        return pairs;
    }

    /// <summary>The median resists the hiccups of a shared machine better than the mean.</summary>
    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}

/// <summary>
/// Medians over paired steps: seconds per step, seconds per pass over the weights, their ratio (with its interquartile
/// range), and the pass's GB/s; with the steps' own passes by size (<see cref="PassProfile"/>) over all <paramref name="Steps"/> steps.
/// </summary>
internal readonly record struct PairedResult(double Step, double Pass, double Ratio, double RatioLow, double RatioHigh, double PassGBps, IReadOnlyList<PassTotals> Passes, int Steps);
