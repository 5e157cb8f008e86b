using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Serving;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// A load generator against a real server on 127.0.0.1: throughput (generated tokens/s) and time-to-first-token
/// p50/p99 at 1, 8 and 32 concurrent clients, all requests unmasked versus random expert masks. Goal: random-mask
/// throughput within 10% of unmasked. The model is a random FlexOlmo (hidden 512, 8 layers, 8 experts top-2).
/// </summary>
internal static class ServeBenchmark
{
    public static async Task RunAsync(string device, string dtype, int[] concurrencies, int requestsPerClient, int tokens, string? json)
    {
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
            foreach (var clients in concurrencies)
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
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }

        report.Save(json);
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
                var request = new JsonObject
                {
                    ["prompt"] = new JsonArray(Enumerable.Range(0, 32).Select(i => (JsonNode)((c * 131) + (r * 17) + (i * 7) + 1)).ToArray()),
                    ["max_tokens"] = tokens,
                    ["temperature"] = 0,
                    ["ignore_eos"] = true,
                    ["stream"] = true,
                };
                if (masked)
                {
                    lock (random)
                    {
                        var exclude = Enumerable.Range(1, 7).Where(_ => random.Next(2) == 0).Select(e => (JsonNode)e).ToArray();
                        request["experts"] = new JsonObject { ["exclude"] = new JsonArray(exclude) };
                    }
                }

                var started = watch.Elapsed.TotalSeconds;
                using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = JsonContent.Create(request) };
                using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var first = true;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (!line.StartsWith("data: {", StringComparison.Ordinal) || !line.Contains("\"token_ids\":[", StringComparison.Ordinal) || line.Contains("\"token_ids\":[]", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    if (first)
                    {
                        lock (firstTokens)
                        {
                            firstTokens.Add(watch.Elapsed.TotalSeconds - started);
                        }

                        first = false;
                    }

                    Interlocked.Increment(ref generated);
                }
            }
        }));
        var seconds = watch.Elapsed.TotalSeconds;
        firstTokens.Sort();
        return (generated / seconds, firstTokens[firstTokens.Count / 2], firstTokens[Math.Min(firstTokens.Count - 1, (int)Math.Ceiling(firstTokens.Count * 0.99) - 1)]);
    }
}
