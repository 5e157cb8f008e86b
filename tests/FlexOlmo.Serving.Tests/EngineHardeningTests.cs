using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace FlexOlmo.Serving.Tests;

/// <summary>
/// One client cannot break the server: a failing request is answered and fails alone, every parameter is validated
/// where it enters (wrong types get 400 naming the field), the sampler is safe for everything validation lets
/// through, and a refused request holds nothing.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class EngineHardeningTests(ServingFixture fixture)
{
    private const long FailingSeed = 666;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SamplingThatFailsOnTheFirstToken_IsAnswered_WithAnErrorAndNoInternals(bool stream)
    {
        await using var app = ServingFixture.InProcess(fixture.Golden["olmo2-tiny"]);
        Engine(app).BeforeSample = s =>
        {
            if (s.State.Request.Sampling.Seed == FailingSeed)
            {
                throw new InvalidOperationException("frame #0: c10::ThrowEnforceNotMet in libtorch_cpu.so");
            }
        };
        using var client = app.GetTestClient();
        client.Timeout = TimeSpan.FromSeconds(30);
        var body = new JsonObject { ["prompt"] = new JsonArray(3, 4, 5), ["max_tokens"] = 4, ["seed"] = FailingSeed, ["temperature"] = 0.7, ["stream"] = stream };

        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await client.PostAsync("/v1/completions", content);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode); // the stream had sent nothing yet: a plain error
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal("generation_failed", error["code"]!.GetValue<string>());
        Assert.Contains("error ", error["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("frame #", text, StringComparison.Ordinal);
        Assert.DoesNotContain("c10", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASequenceThatFailsInASharedStep_FailsAlone_AndTheOthersGetExactlyTheirOwnTokens()
    {
        await using var app = ServingFixture.InProcess(fixture.Golden["flexolmo-tiny"], new ServerOptions { Model = fixture.Golden["flexolmo-tiny"].Folder, MaxBatch = 8 });
        using var client = app.GetTestClient();
        var requests = Enumerable.Range(0, 5).Select(i => new JsonObject
        {
            ["prompt"] = new JsonArray(3 + i, 10 + i, 20 + i),
            ["max_tokens"] = 12,
            ["temperature"] = i % 2 == 0 ? 0 : 0.9,
            ["seed"] = i == 2 ? FailingSeed : i,
            ["ignore_eos"] = true,
        }).ToList();
        var alone = new List<JsonNode?>();
        foreach (var request in requests.Where(r => r["seed"]!.GetValue<long>() != FailingSeed))
        {
            alone.Add((await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject())).Body["choices"]![0]!["token_ids"]);
        }

        Engine(app).BeforeSample = s =>
        {
            if (s.State.Request.Sampling.Seed == FailingSeed && s.State.Tokens.Count == 4)
            {
                throw new InvalidOperationException("boom");
            }
        };
        var together = await Task.WhenAll(requests.Select(r => ServingFixture.PostAsync(client, "/v1/completions", r.DeepClone().AsObject())));

        Assert.Equal([200, 200, 500, 200, 200], together.Select(t => t.Status));
        var survivors = together.Where(t => t.Status == 200).Select(t => t.Body["choices"]![0]!["token_ids"]!.ToJsonString()).ToList();
        Assert.Equal(alone.Select(a => a!.ToJsonString()), survivors);
    }

    [Fact]
    public async Task WhenASharedForwardPassFails_ItsRowsRunAlone_AndOnlyTheRowThatFailsAloneIsFailed()
    {
        await using var app = ServingFixture.InProcess(fixture.Golden["olmo2-tiny"], new ServerOptions { Model = fixture.Golden["olmo2-tiny"].Folder, MaxBatch = 8 });
        using var client = app.GetTestClient();
        var requests = Enumerable.Range(0, 4).Select(i => new JsonObject { ["prompt"] = new JsonArray(5 + i, 6), ["max_tokens"] = 10, ["temperature"] = 0, ["seed"] = i == 1 ? FailingSeed : i, ["ignore_eos"] = true }).ToList();
        var alone = new List<string>();
        foreach (var request in requests.Where(r => r["seed"]!.GetValue<long>() != FailingSeed))
        {
            alone.Add((await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject())).Body["choices"]![0]!["token_ids"]!.ToJsonString());
        }

        var shared = 0;
        Engine(app).BeforeForward = rows =>
        {
            if (rows.Any(r => r.State.Request.Sampling.Seed == FailingSeed && r.State.Tokens.Count >= 3))
            {
                shared += rows.Count > 1 ? 1 : 0;
                throw new InvalidOperationException("a kernel failed");
            }
        };
        var together = await Task.WhenAll(requests.Select(r => ServingFixture.PostAsync(client, "/v1/completions", r.DeepClone().AsObject())));

        Assert.Equal([200, 500, 200, 200], together.Select(t => t.Status));
        Assert.Equal(alone, together.Where(t => t.Status == 200).Select(t => t.Body["choices"]![0]!["token_ids"]!.ToJsonString()));
        Assert.True(shared > 0, "the failure should have hit a shared step at least once");
    }

    [Fact]
    public async Task WhenASharedPassFailsAfterItsCachesAdvanced_ItsPartsRunAloneFromTheirOwnStart_AndGetTheTokensTheyGetAlone()
    {
        var host = fixture.Golden["flexolmo-tiny"];
        await using var app = ServingFixture.InProcess(host, new ServerOptions { Model = host.Folder, MaxBatch = 8 });
        using var client = app.GetTestClient();
        var requests = Enumerable.Range(0, 3).Select(i => new JsonObject { ["prompt"] = new JsonArray(Enumerable.Range(0, 20 + (i * 30)).Select(t => (JsonNode)((((t * 13) + i) % 500) + 3)).ToArray()), ["max_tokens"] = 6, ["temperature"] = 0, ["ignore_eos"] = true }).ToList();
        var alone = new List<string>();
        foreach (var request in requests)
        {
            alone.Add((await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject())).Body["choices"]![0]!["token_ids"]!.ToJsonString());
        }

        var failures = 0;
        Engine(app).AfterForward = rows =>
        {
            if (rows.Count > 1 && failures < 3)
            {
                failures++;
                throw new InvalidOperationException("the LM head failed");
            }
        };
        var together = await Task.WhenAll(requests.Select(r => ServingFixture.PostAsync(client, "/v1/completions", r.DeepClone().AsObject())));

        Assert.Equal(3, failures);
        Assert.All(together, t => Assert.Equal(200, t.Status));
        Assert.Equal(alone, together.Select(t => t.Body["choices"]![0]!["token_ids"]!.ToJsonString()));
    }

    [Fact]
    public async Task EveryAcceptedSamplingRequest_Gets200_AndTheTokensItGetsAlone_PropertyBased()
    {
        var host = fixture.Golden["flexolmo-tiny"];
        await using var app = ServingFixture.InProcess(host, new ServerOptions { Model = host.Folder, MaxBatch = 16, MaxQueue = 256 });
        using var client = app.GetTestClient();
        var temperature = Gen.OneOf(Gen.Double[0.0, 2.0], Gen.Double[1e-300, 1e-20], Gen.OneOf(0.0, double.Epsilon, 1e-308, 2.0));
        var topP = Gen.OneOf(Gen.Double[1e-12, 1.0], Gen.OneOf(1.0, double.Epsilon, 1e-300));
        var request = Gen.Select(temperature, topP, Gen.Int[0, 700], Gen.Long, Gen.Int[1, 5], Gen.Int[3, 511].Array[1, 6], Gen.Int[0, 4], (t, p, k, seed, max, prompt, mask) =>
        {
            var body = new JsonObject { ["prompt"] = new JsonArray(prompt.Select(x => (JsonNode)x).ToArray()), ["max_tokens"] = max, ["temperature"] = t, ["top_p"] = p, ["top_k"] = k, ["seed"] = seed, ["ignore_eos"] = true };
            if (mask > 0)
            {
                body["experts"] = mask % 2 == 0 ? new JsonObject { ["exclude"] = new JsonArray(mask - 1 == 0 ? 1 : mask - 1) } : new JsonObject { ["include"] = new JsonArray(mask) };
            }

            return body.ToJsonString();
        });

        await request.Array[6, 10].SampleAsync(
            async bodies =>
            {
                var alone = new List<string>();
                foreach (var body in bodies)
                {
                    var (status, answer) = await ServingFixture.PostAsync(client, "/v1/completions", JsonNode.Parse(body)!.AsObject());
                    Assert.True(status == 200, $"{body} -> {status} {answer.ToJsonString()}");
                    alone.Add(answer["choices"]![0]!["token_ids"]!.ToJsonString());
                }

                var together = await Task.WhenAll(bodies.Select(b => ServingFixture.PostAsync(client, "/v1/completions", JsonNode.Parse(b)!.AsObject())));
                Assert.All(together, t => Assert.Equal(200, t.Status));
                Assert.Equal(alone, together.Select(t => t.Body["choices"]![0]!["token_ids"]!.ToJsonString()));
            },
            iter: 4,
            threads: 1);
    }

    [Theory]
    [InlineData("""{"prompt": "x", "temperature": 2.5}""", "temperature")]
    [InlineData("""{"prompt": "x", "temperature": 1e400}""", "temperature")]
    [InlineData("""{"prompt": "x", "temperature": -1e-300}""", "temperature")]
    [InlineData("""{"prompt": "x", "top_p": 0}""", "top_p")]
    [InlineData("""{"prompt": "x", "top_p": 1.5}""", "top_p")]
    [InlineData("""{"prompt": "x", "top_k": -1}""", "top_k")]
    [InlineData("""{"prompt": "x", "top_k": 1.5}""", "top_k")]
    [InlineData("""{"prompt": "x", "seed": 1e30}""", "seed")]
    public async Task SamplingParameters_OutOfRangeOrNotFinite_Get400NamingTheParameter(string request, string param)
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();

        var (status, body) = await Post(client, request);

        Assert.Equal(400, status);
        Assert.Equal(param, body["error"]!["param"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""[1, 2]""", null, "JSON object")]
    [InlineData("""5""", null, "JSON object")]
    [InlineData("""{"prompt": 5}""", "prompt", "prompt")]
    [InlineData("""{"prompt": [1, "a"]}""", "prompt", "prompt[1]")]
    [InlineData("""{"prompt": [[1, 2], [3, "x"]]}""", "prompt", "prompt[1][1]")]
    [InlineData("""{"prompt": [1.5]}""", "prompt", "prompt[0]")]
    [InlineData("""{"prompt": [true]}""", "prompt", "prompt[0]")]
    [InlineData("""{"prompt": "x", "max_tokens": "5"}""", "max_tokens", "max_tokens")]
    [InlineData("""{"prompt": "x", "temperature": "0.5"}""", "temperature", "temperature")]
    [InlineData("""{"prompt": "x", "stream": "true"}""", "stream", "stream")]
    [InlineData("""{"prompt": "x", "ignore_eos": 1}""", "ignore_eos", "ignore_eos")]
    [InlineData("""{"prompt": "x", "n": "1"}""", "n", "'n'")]
    [InlineData("""{"prompt": "x", "stop": [1]}""", "stop", "stop[0]")]
    [InlineData("""{"prompt": "x", "stop": 5}""", "stop", "stop")]
    [InlineData("""{"prompt": "x", "model": 5}""", "model", "model")]
    [InlineData("""{"prompt": "x", "experts": {"include": [1.5]}}""", "experts", "experts.include[0]")]
    [InlineData("""{"prompt": "x", "experts": {"include": [true]}}""", "experts", "experts.include[0]")]
    [InlineData("""{"prompt": "x", "experts": {"exclude": "counting"}}""", "experts", "experts.exclude")]
    [InlineData("""{"prompt": "x", "experts": ["counting"]}""", "experts", "experts")]
    public async Task WrongJsonTypes_Get400_WithAJsonErrorNamingTheField(string request, string? param, string named)
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();

        var (status, body) = await Post(client, request);

        Assert.Equal(400, status);
        Assert.Equal(param, body["error"]!["param"]?.GetValue<string>());
        Assert.Contains(named, body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"messages": [5]}""", "messages[0]")]
    [InlineData("""{"messages": [{"role": 5, "content": "hi"}]}""", "messages[0].role")]
    [InlineData("""{"messages": [{"role": "user", "content": 5}]}""", "messages[0].content")]
    [InlineData("""{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}""", "messages[0].content[0].text")]
    [InlineData("""{"messages": [{"role": "user", "content": [5]}]}""", "messages[0].content[0]")]
    [InlineData("""{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}""", "messages[0].content[0]")]
    public async Task Chat_WrongJsonTypes_Get400NamingTheMessage(string request, string named)
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();

        var (status, body) = await Post(client, request, "/v1/chat/completions");

        Assert.Equal(400, status);
        Assert.Contains(named, body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownModel_Gets404_AsOpenAIsApiDoes()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();

        var (status, body) = await Post(client, """{"model": "gpt-4", "prompt": "x", "max_tokens": 1}""");
        var (named, _) = await Post(client, $$"""{"model": "{{fixture.Composed.Name}}", "prompt": "x", "max_tokens": 1}""");

        Assert.Equal(404, status);
        Assert.Equal("model_not_found", body["error"]!["code"]!.GetValue<string>());
        Assert.Equal(200, named);
    }

    [Fact]
    public async Task ARefusedRequest_QueuesNothing_AndItsRetryAfterSaysWhen()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, MaxBatch = 1, MaxQueue = 2 });
        using var client = app.GetTestClient();
        using var release = new ManualResetEventSlim();
        var engineBusy = new TaskCompletionSource();
        Engine(app).BeforeSample = s =>
        {
            if (s.State.Request.Sampling.Seed == 1234 && s.State.Tokens.Count == 0)
            {
                engineBusy.TrySetResult();
                release.Wait(TimeSpan.FromSeconds(30)); // hold the engine so the queue cannot drain
            }
        };
        var busy = ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one", ["max_tokens"] = 2, ["seed"] = 1234 });
        await engineBusy.Task.WaitAsync(TimeSpan.FromSeconds(20));

        using var refused = await client.PostAsync("/v1/completions", new StringContent("""{"prompt": ["a", "b", "c"], "max_tokens": 50}""", Encoding.UTF8, "application/json"));
        var queued = await Metric(client, "flexolmo_queue_length");
        release.Set();

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("1", refused.Headers.RetryAfter?.ToString());
        Assert.Equal(0, queued);
        Assert.Equal(200, (await busy).Status);
    }

    [Fact]
    public async Task ARequestThatFails_ReleasesItsOtherSequencesAtOnce()
    {
        await using var app = ServingFixture.InProcess(fixture.Golden["olmo2-tiny"], new ServerOptions { Model = fixture.Golden["olmo2-tiny"].Folder, MaxBatch = 4 });
        Engine(app).BeforeSample = s =>
        {
            if (s.State.Request.PromptIds[0] == 7 && s.State.Tokens.Count == 1)
            {
                throw new InvalidOperationException("boom");
            }
        };
        using var client = app.GetTestClient();

        var (status, _) = await Post(client, """{"prompt": [[7, 8], [9, 10]], "max_tokens": 200, "temperature": 0, "ignore_eos": true}""");
        await WaitForAsync(() => Metric(client, "flexolmo_active_sequences"), 0);
        var generated = await Metric(client, "flexolmo_generated_tokens_total");

        Assert.Equal(500, status);
        Assert.True(generated < 100, $"{generated} tokens were generated for a request that had already failed");
    }

    [Fact]
    public async Task Metrics_CountEveryResponse_UnderTheStatusItReallyGot()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();

        await Post(client, """{"prompt": "x", "max_tokens": 1}""");
        await Post(client, """{"prompt": "x", "max_tokens": "1"}""");
        await Post(client, """{"model": "nope", "prompt": "x"}""");
        await Post(client, "[]");
        using var missing = await client.GetAsync("/v1/nothing");
        var metrics = await client.GetStringAsync("/metrics");

        Assert.Contains("flexolmo_requests_total{endpoint=\"completions\",status=\"200\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_requests_total{endpoint=\"completions\",status=\"400\"} 2", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_requests_total{endpoint=\"completions\",status=\"404\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_requests_total{endpoint=\"other\",status=\"404\"} 1", metrics, StringComparison.Ordinal);
    }

    internal static GenerationEngine Engine(Microsoft.AspNetCore.Builder.WebApplication app) => app.Services.GetRequiredService<GenerationEngine>();

    internal static async Task<(int Status, JsonObject Body)> Post(HttpClient client, string body, string path = "/v1/completions")
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonNode.Parse(text)!.AsObject());
    }

    internal static async Task<long> Metric(HttpClient client, string name)
    {
        var line = (await client.GetStringAsync("/metrics")).Split('\n').First(l => l.StartsWith(name + " ", StringComparison.Ordinal));
        return long.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    internal static async Task WaitForAsync(Func<Task<long>> read, long expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await read() != expected)
        {
            Assert.True(DateTime.UtcNow < deadline, $"waited 20 s for {expected}");
            await Task.Delay(20);
        }
    }
}
