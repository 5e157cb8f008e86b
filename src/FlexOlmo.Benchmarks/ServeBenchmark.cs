using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Generation;
using FlexOlmo.Serving;
using Microsoft.Extensions.DependencyInjection;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// A load generator against a real server on 127.0.0.1, on a random FlexOlmo (hidden 512, 8 layers, 8 experts top-2):
/// <list type="bullet">
/// <item>throughput (generated tokens/s) and time-to-first-token p50/p99 at 1, 8 and 32 concurrent clients, unmasked
/// and with random expert masks;</item>
/// <item>8 clients against offline batch-8 decoding of the same model and requests (<c>flexolmo generate</c>'s path),
/// in alternating pairs; goal 0.9x;</item>
/// <item>random masks against none at 8 clients, over several alternating rounds so that the spread shows; goal
/// 0.95x;</item>
/// <item>a 2,048-token prompt arriving while 8 clients decode, in several rounds: the longest gap between their tokens
/// while it is prefilled against their usual gap (goal at most 2x), and its time to first token against its prefill
/// alone (goal at most 1.5x).</item>
/// </list>
/// </summary>
internal static class ServeBenchmark
{
    /// <summary>The benchmark's parts, in the order they run: the load table, the offline comparison, the mask rounds, the long prompt.</summary>
    public static readonly string[] Sections = ["load", "offline", "masks", "long-prompt"];

    public static async Task RunAsync(string device, string dtype, int[] concurrencies, int requestsPerClient, int tokens, string[] sections, int longPromptRounds, string? json)
    {
        if (longPromptRounds < 1)
        {
            throw new ArgumentException($"serve: --long-prompt-rounds is {longPromptRounds}; give at least 1.");
        }

        var report = new Report("serve");
        var folder = Directory.CreateTempSubdirectory("flexolmo-serve-bench-").FullName;
        try
        {
            var config = BenchmarkModel.Config(hidden: 512, layers: 8, intermediate: 1536) with { NumAttentionHeads = 8, NumKeyValueHeads = 8, EosTokenIds = [0] };
            using (var model = BenchmarkModel.Create(config, CPU, ScalarType.Float32))
            {
                CheckpointSaver.Save(model, folder);
            }

            var options = new ServerOptions { Model = folder, Host = "127.0.0.1", Port = 0, Device = device, DType = dtype, MaxBatch = 32, MaxQueue = 256 };
            await using var app = FlexOlmoServer.Build(options);
            await app.StartAsync();
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromMinutes(10) };
            report.Note($"model: hidden 512, 8 layers, 8 experts top-2, vocab {config.VocabSize}, {dtype} on {device}; {tokens} tokens per request, {requestsPerClient} requests per client; threads {get_num_threads()}");
            await Load(http, 1, 1, tokens, masked: false, new Random(0)); // warm-up
            foreach (var clients in sections.Contains("load") ? concurrencies : [])
            {
                foreach (var masked in new[] { false, true })
                {
                    var (tokensPerSecond, p50, p99) = await Load(http, clients, requestsPerClient, tokens, masked, new Random(clients));
                    report.Add(new()
                    {
                        ["clients"] = clients,
                        ["masks"] = masked ? "random" : "none",
                        ["tokens_per_s"] = tokensPerSecond,
                        ["ttft_p50_ms"] = p50 * 1000,
                        ["ttft_p99_ms"] = p99 * 1000,
                    });
                }
            }

            if (sections.Contains("offline"))
            {
                await Offline(report, http, options, tokens, requestsPerClient);
            }

            if (sections.Contains("masks"))
            {
                await MaskRounds(report, http, tokens, requestsPerClient);
            }

            if (sections.Contains("long-prompt"))
            {
                await LongPrompt(report, http, app.Services.GetRequiredService<GenerationEngine>(), tokens, longPromptRounds);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }

        report.Save(json);
    }

    /// <summary>
    /// 8 clients through the server against the same 8 requests decoded offline as one batch, in pairs of back-to-back
    /// runs whose order alternates (server first, then offline first), so that slow drift of the machine cancels within
    /// a pair: the mean paired ratio, its standard error, and the spread of each side. The offline runs decode each of
    /// the clients' requests in turn (<paramref name="requestsPerClient"/> batches of 8), as the clients send them.
    /// </summary>
    private static async Task Offline(Report report, HttpClient http, ServerOptions options, int tokens, int requestsPerClient)
    {
        const int Clients = 8;
        const int Rounds = 6;
        using var host = ModelHost.Load(options);
        var generator = new TextGenerator(host.Model, null);
        var batches = Enumerable.Range(0, requestsPerClient)
            .Select(r => Enumerable.Range(0, Clients).Select(c => new GenerationRequest(Prompt(c, r, 32), new SamplingOptions { MaxNewTokens = tokens })).ToArray())
            .ToArray();
        generator.Generate(batches[0].Select(r => r with { Sampling = r.Sampling with { MaxNewTokens = 2 } }).ToArray()); // warm-up
        double OfflineRun()
        {
            var watch = Stopwatch.StartNew();
            var generated = batches.Sum(batch => generator.Generate(batch).Sum(r => r.TokenIds.Count));
            return generated / watch.Elapsed.TotalSeconds;
        }

        var offline = new List<double>();
        var served = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            if (round % 2 == 0)
            {
                served.Add((await Load(http, Clients, requestsPerClient, tokens, masked: false, new Random(round))).TokensPerSecond);
                offline.Add(OfflineRun());
            }
            else
            {
                offline.Add(OfflineRun());
                served.Add((await Load(http, Clients, requestsPerClient, tokens, masked: false, new Random(round))).TokensPerSecond);
            }
        }

        var ratios = served.Zip(offline, (s, o) => s / o).ToList();
        report.Add(new()
        {
            ["comparison"] = $"8 clients vs offline batch 8, {Rounds} alternating pairs",
            ["server_tokens_per_s"] = served.Average(),
            ["server_spread"] = Spread(served),
            ["offline_tokens_per_s"] = offline.Average(),
            ["offline_spread"] = Spread(offline),
            ["paired_ratio"] = ratios.Average(),
            ["paired_ratio_range"] = $"{ratios.Min():0.000}-{ratios.Max():0.000}",
            ["standard_error_pct"] = StandardError(ratios) / ratios.Average() * 100,
        });
    }

    /// <summary>
    /// Random masks against none at 8 clients, in pairs of back-to-back runs whose order alternates (none first, then
    /// masks first), so slow drift of the machine cancels within a pair: the mean paired ratio, its standard error,
    /// and the spread of each side.
    /// </summary>
    private static async Task MaskRounds(Report report, HttpClient http, int tokens, int requestsPerClient)
    {
        const int Rounds = 8;
        var plain = new List<double>();
        var masked = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            var seed = new Random(round);
            if (round % 2 == 0)
            {
                plain.Add((await Load(http, 8, requestsPerClient, tokens, masked: false, seed)).TokensPerSecond);
                masked.Add((await Load(http, 8, requestsPerClient, tokens, masked: true, new Random(round))).TokensPerSecond);
            }
            else
            {
                masked.Add((await Load(http, 8, requestsPerClient, tokens, masked: true, seed)).TokensPerSecond);
                plain.Add((await Load(http, 8, requestsPerClient, tokens, masked: false, new Random(round))).TokensPerSecond);
            }
        }

        var ratios = masked.Zip(plain, (m, p) => m / p).ToList();
        var mean = ratios.Average();
        var standardError = StandardError(ratios);
        report.Add(new()
        {
            ["comparison"] = $"random masks vs none, 8 clients, {Rounds} alternating pairs",
            ["none_tokens_per_s"] = plain.Average(),
            ["none_spread"] = Spread(plain),
            ["masked_tokens_per_s"] = masked.Average(),
            ["masked_spread"] = Spread(masked),
            ["paired_ratio"] = mean,
            ["paired_ratio_range"] = $"{ratios.Min():0.000}-{ratios.Max():0.000}",
            ["standard_error_pct"] = standardError / mean * 100,
        });
    }

    /// <summary>
    /// A 2,048-token prompt arriving while 8 clients decode, <paramref name="rounds"/> times, each with new clients: their
    /// longest gap, and its time to first token against its prefill alone on the idle server just before (so that the
    /// machine's slow drift cancels within a round). The gaps are measured twice: as the clients receive their tokens
    /// (HTTP delivery included, on the same cores), and as the engine's steps, from the end of one forward pass to the
    /// end of the next. One row per round, then the worst.
    /// </summary>
    private static async Task LongPrompt(Report report, HttpClient http, GenerationEngine engine, int tokens, int rounds)
    {
        const int Long = 2048;
        var longPrompt = Prompt(99, 0, Long);
        await Stream(http, Request(longPrompt, 1), () => { }); // warm-up
        var (stall, engineStall, ttft) = (0.0, 0.0, 0.0);
        for (var round = 0; round < rounds; round++)
        {
            var watch = Stopwatch.StartNew();
            var alone = 0.0;
            await Stream(http, Request(longPrompt, 1), () => alone = alone == 0 ? watch.Elapsed.TotalSeconds : alone);
            var row = await LongPromptRound(http, engine, longPrompt, tokens, alone, round);
            row["comparison"] = $"a {Long}-token prompt while 8 clients decode, round {round + 1} of {rounds}";
            report.Add(row);
            stall = Math.Max(stall, (double)row["stall_ratio"]);
            engineStall = Math.Max(engineStall, (double)row["engine_step_max_ratio"]);
            ttft = Math.Max(ttft, (double)row["ttft_ratio"]);
        }

        report.Add(new()
        {
            ["comparison"] = $"a {Long}-token prompt while 8 clients decode, the worst of {rounds} rounds",
            ["stall_ratio"] = stall,
            ["engine_step_max_ratio"] = engineStall,
            ["ttft_ratio"] = ttft,
        });
    }

    private static async Task<Dictionary<string, object>> LongPromptRound(HttpClient http, GenerationEngine engine, int[] longPrompt, int tokens, double alone, int round)
    {
        var clock = Stopwatch.StartNew();
        var passes = new List<double>();
        engine.AfterForward = _ =>
        {
            lock (passes)
            {
                passes.Add(clock.Elapsed.TotalSeconds);
            }
        };
        var stamps = Enumerable.Range(0, 8).Select(_ => new List<double>()).ToArray();
        var decoding = Enumerable.Range(0, 8)
            .Select(c => Stream(http, Request(Prompt(c, 1 + round, 32), Math.Max(tokens * 8, 256)), () =>
            {
                lock (stamps[c])
                {
                    stamps[c].Add(clock.Elapsed.TotalSeconds);
                }
            }))
            .ToArray();
        while (stamps.Any(s => s.Count < 20))
        {
            await Task.Delay(20);
        }

        var arrived = clock.Elapsed.TotalSeconds;
        var pausedBefore = GC.GetTotalPauseDuration();
        var collectionsBefore = Enumerable.Range(0, 3).Select(GC.CollectionCount).ToArray();
        var firstToken = 0.0;
        await Stream(http, Request(longPrompt, 1), () => firstToken = firstToken == 0 ? clock.Elapsed.TotalSeconds : firstToken);
        var paused = GC.GetTotalPauseDuration() - pausedBefore; // the process's collections while the prompt was in the server
        var collections = string.Join("/", Enumerable.Range(0, 3).Select(g => GC.CollectionCount(g) - collectionsBefore[g])); // gen 0/1/2; each counts in those below it
        await Task.WhenAll(decoding);
        engine.AfterForward = null;
        double[] steps;
        lock (passes)
        {
            steps = [.. passes];
        }

        // The usual step and gap: decoding alone, before the prompt arrived and after its first token while every client
        // still decodes (so that a change of the machine's speed during the prompt shows on both sides).
        var warmed = stamps.Max(s => s[1]); // every client decoding
        var ending = stamps.Min(s => s[^1]); // the first client done
        bool Usual(double start, double end) => (start >= warmed && end < arrived) || (start > firstToken && end <= ending);
        var stepsUsual = steps.Zip(steps.Skip(1), (a, b) => (Start: a, Length: b - a)).Where(g => Usual(g.Start, g.Start + g.Length)).Select(g => g.Length).Order().ToArray();
        var stepsDuring = steps.Zip(steps.Skip(1), (a, b) => (Start: a, Length: b - a)).Where(g => g.Start + g.Length > arrived && g.Start < firstToken).Select(g => g.Length).Order().ToArray();
        var usualStep = stepsUsual[stepsUsual.Length / 2];

        // The clients' usual gap: the median without the prompt, as above; the worst: the longest gap that overlaps the
        // long prompt's time in the server (arrival to its first token).
        var usualGaps = stamps.SelectMany(s => s.Zip(s.Skip(1), (a, b) => (Start: a, Gap: b - a)).Where(g => Usual(g.Start, g.Start + g.Gap)).Select(g => g.Gap)).Order().ToArray();
        var overlapping = stamps.SelectMany(s => s.Zip(s.Skip(1), (a, b) => (Start: a, End: b)).Where(g => g.End > arrived && g.Start < firstToken)).ToList();
        var gaps = overlapping.Select(g => g.End - g.Start).DefaultIfEmpty(0).Order().ToArray();
        var during = gaps[^1];
        var longest = overlapping.Count == 0 ? 0 : overlapping.MaxBy(g => g.End - g.Start).Start - arrived;
        var usual = usualGaps[usualGaps.Length / 2];
        return new()
        {
            ["usual_gap_ms"] = usual * 1000,
            ["longest_gap_ms"] = during * 1000,
            ["stall_ratio"] = during / usual,
            ["gap_p50_ratio"] = gaps[gaps.Length / 2] / usual,
            ["gap_p90_ratio"] = gaps[Math.Min(gaps.Length - 1, gaps.Length * 9 / 10)] / usual,
            ["longest_gap_from_ms"] = longest * 1000, // after the long prompt's arrival
            ["engine_usual_step_ms"] = usualStep * 1000,
            ["engine_step_p50_ratio"] = stepsDuring[stepsDuring.Length / 2] / usualStep,
            ["engine_step_max_ratio"] = stepsDuring[^1] / usualStep,
            ["engine_usual_p90_ratio"] = stepsUsual[Math.Min(stepsUsual.Length - 1, stepsUsual.Length * 9 / 10)] / usualStep, // the machine's own spread, without the prompt
            ["engine_usual_max_ratio"] = stepsUsual[^1] / usualStep,
            ["gc_pause_ms"] = paused.TotalMilliseconds,
            ["gc_collections"] = collections,
            ["ttft_ms"] = (firstToken - arrived) * 1000,
            ["prefill_alone_ms"] = alone * 1000,
            ["ttft_ratio"] = (firstToken - arrived) / alone,
        };
    }

    /// <summary>The standard error of the mean of <paramref name="values"/>.</summary>
    private static double StandardError(List<double> values)
    {
        var mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1) / values.Count);
    }

    /// <summary>The range of <paramref name="values"/>, and its width against their mean.</summary>
    private static string Spread(List<double> values) => $"{values.Min():0.0}-{values.Max():0.0} ({(values.Max() - values.Min()) / values.Average() * 100:0.0}%)";

    private static int[] Prompt(int client, int request, int length) =>
        Enumerable.Range(0, length).Select(i => ((client * 131) + (request * 17) + (i * 7) + 1) % 50000).ToArray();

    private static JsonObject Request(int[] prompt, int tokens) => new()
    {
        ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()),
        ["max_tokens"] = tokens,
        ["temperature"] = 0,
        ["ignore_eos"] = true,
        ["stream"] = true,
    };

    /// <summary>Streams one request, calling <paramref name="onToken"/> for every chunk that carries a token.</summary>
    private static async Task Stream(HttpClient http, JsonObject request, Action onToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(request) };
        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"token_ids\":[", StringComparison.Ordinal) && !line.Contains("\"token_ids\":[]", StringComparison.Ordinal))
            {
                onToken();
            }
        }
    }

    private static async Task<(double TokensPerSecond, double P50, double P99)> Load(HttpClient http, int clients, int requestsPerClient, int tokens, bool masked, Random random)
    {
        var firstTokens = new List<double>();
        long generated = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(async c =>
        {
            for (var r = 0; r < requestsPerClient; r++)
            {
                var request = Request(Prompt(c, r, 32), tokens);
                if (masked)
                {
                    lock (random)
                    {
                        var exclude = Enumerable.Range(1, 7).Where(_ => random.Next(2) == 0).Select(e => (JsonNode)e).ToArray();
                        request["experts"] = new JsonObject { ["exclude"] = new JsonArray(exclude) };
                    }
                }

                var started = watch.Elapsed.TotalSeconds;
                var first = true;
                await Stream(http, request, () =>
                {
                    if (first)
                    {
                        lock (firstTokens)
                        {
                            firstTokens.Add(watch.Elapsed.TotalSeconds - started);
                        }

                        first = false;
                    }

                    Interlocked.Increment(ref generated);
                });
            }
        }));
        var seconds = watch.Elapsed.TotalSeconds;
        firstTokens.Sort();
        return (generated / seconds, firstTokens[firstTokens.Count / 2], firstTokens[Math.Min(firstTokens.Count - 1, (int)Math.Ceiling(firstTokens.Count * 0.99) - 1)]);
    }
}
