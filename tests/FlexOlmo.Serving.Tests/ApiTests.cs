using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using Microsoft.AspNetCore.TestHost;

namespace FlexOlmo.Serving.Tests;

/// <summary>In-process API tests (ASP.NET Core test host) for every rule of the server.</summary>
[Collection(ServingCollection.Name)]
public sealed class ApiTests(ServingFixture fixture)
{
    [Theory]
    [InlineData("olmo2-tiny")]
    [InlineData("flexolmo-tiny")]
    [InlineData("flexolmo-tiny-optout")]
    public async Task TokenIdPrompts_AtTemperature0_ReproduceTransformersGreedyTokens(string name)
    {
        var reference = HfReference.Load(name);
        await using var app = ServingFixture.InProcess(fixture.Golden[name]);
        using var client = app.GetTestClient();
        var prompts = new JsonArray(reference.InputIds.Select(r => (JsonNode)new JsonArray(r.Take(8).Select(x => (JsonNode)x).ToArray())).ToArray());

        var (status, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = prompts, ["max_tokens"] = 8, ["temperature"] = 0, ["ignore_eos"] = true });

        Assert.Equal(200, status);
        for (var b = 0; b < reference.InputIds.Length; b++)
        {
            Assert.Equal(reference.GreedyTokens[b].Skip(8).Select(x => (int)x), body["choices"]![b]!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
        }
    }

    [Fact]
    public async Task ExcludingExpert3_ReproducesTheOptOutModelsTokens()
    {
        var full = HfReference.Load("flexolmo-tiny");
        var optout = HfReference.Load("flexolmo-tiny-optout");
        await using var app = ServingFixture.InProcess(fixture.Golden["flexolmo-tiny"]);
        using var client = app.GetTestClient();

        var (status, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject
        {
            ["prompt"] = new JsonArray(full.InputIds[1].Take(8).Select(x => (JsonNode)x).ToArray()),
            ["max_tokens"] = 8,
            ["temperature"] = 0,
            ["ignore_eos"] = true,
            ["experts"] = new JsonObject { ["exclude"] = new JsonArray(3) },
        });

        Assert.Equal(200, status);
        Assert.Equal(optout.GreedyTokens[1].Skip(8).Select(x => (int)x), body["choices"]![0]!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
        Assert.Equal(["public", "expert-1", "expert-2"], body["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
    }

    [Fact]
    public async Task Temperature0_EqualsFlexolmoGenerate_ForTextPrompts()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();
        var prompt = "one two three four";
        var expected = new TextGenerator(fixture.Composed.Model, fixture.Composed.Tokenizer).Generate(
            [new GenerationRequest(fixture.Composed.Tokenizer!.Encode(prompt).ToArray(), new SamplingOptions { MaxNewTokens = 12, EosTokenIds = fixture.Composed.EosTokenIds.ToArray() }, ExpertSet.Exclude(3, [2]))])[0];

        var (_, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject
        {
            ["prompt"] = prompt,
            ["max_tokens"] = 12,
            ["temperature"] = 0,
            ["experts"] = new JsonObject { ["exclude"] = new JsonArray("chemistry") },
        });

        Assert.Equal(expected.TokenIds, body["choices"]![0]!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
        Assert.Equal(expected.Text, body["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(["public", "counting"], body["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
    }

    [Theory]
    [InlineData("""{"prompt": "x", "experts": {"exclude": ["astronomy"]}}""", 400, "Unknown expert 'astronomy'")]
    [InlineData("""{"prompt": "x", "experts": {"include": ["counting"], "exclude": ["chemistry"]}}""", 400, "not both")]
    [InlineData("""{"prompt": "x", "experts": {"include": []}}""", 400, "is empty")]
    [InlineData("""{"prompt": "x", "experts": {"exclude": ["public"]}}""", 400, "always stays")]
    [InlineData("""{"prompt": "x", "max_tokens": 5000}""", 400, "max_tokens must be between 1 and 1024")]
    [InlineData("""{"prompt": "x", "n": 2}""", 400, "Only n = 1")]
    [InlineData("""{"prompt": [[1, 99999]]}""", 400, "Token ids must be in 0..335")]
    [InlineData("""{"max_tokens": 4}""", 400, "'prompt' is required")]
    [InlineData("""{"prompt": "x", "temperature": -1}""", 400, "temperature must be >= 0")]
    [InlineData("""{"prompt": "x",""", 400, "not valid JSON")]
    public async Task BadRequests_Get400WithAJsonErrorNamingTheProblem(string request, int status, string message)
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();
        using var content = new StringContent(request, Encoding.UTF8, "application/json");
        using var response = await client.PostAsync("/v1/completions", content);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Contains(message, body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("invalid_request_error", body["error"]!["type"]!.GetValue<string>());
    }

    [Fact]
    public async Task PromptLongerThanTheLimit_Gets400()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, MaxPromptTokens = 5 });
        using var client = app.GetTestClient();
        var (status, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = new JsonArray(1, 2, 3, 4, 5, 6) });
        Assert.Equal(400, status);
        Assert.Equal("prompt_too_long", body["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Chat_WithoutATemplate_Gets400_AndWithOne_RendersAndAnswers()
    {
        await using (var dense = ServingFixture.InProcess(fixture.Golden["olmo2-tiny"]))
        {
            using var client = dense.GetTestClient();
            var (status, body) = await ServingFixture.PostAsync(client, "/v1/chat/completions", new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }) });
            Assert.Equal(400, status);
            Assert.Equal("no_chat_template", body["error"]!["code"]!.GetValue<string>());
        }

        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var chatClient = app.GetTestClient();
        var (ok, answer) = await ServingFixture.PostAsync(chatClient, "/v1/chat/completions", new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "one two three" }),
            ["max_tokens"] = 6,
            ["temperature"] = 0,
        });
        Assert.Equal(200, ok);
        Assert.Equal("assistant", answer["choices"]![0]!["message"]!["role"]!.GetValue<string>());
        Assert.Equal("chat.completion", answer["object"]!.GetValue<string>());
        var rendered = fixture.Composed.Tokenizer!.Encode("<|user|>\none two three\n<|assistant|>\n").Count;
        Assert.Equal(rendered, answer["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task Streaming_SendsTokensAsServerSentEvents_EndingInDone()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();
        using var content = new StringContent("""{"prompt": "one two", "max_tokens": 5, "temperature": 0, "stream": true}""", Encoding.UTF8, "application/json");
        using var response = await client.PostAsync("/v1/completions", content);
        var text = await response.Content.ReadAsStringAsync();
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e.Trim()).ToList();

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        Assert.Equal(5, chunks.Count(c => c["choices"]!.AsArray().Count == 1 && c["choices"]![0]!["finish_reason"] is null));
        Assert.Equal("length", chunks.Single(c => c["choices"]!.AsArray().Count == 1 && c["choices"]![0]!["finish_reason"] is not null)["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(5, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task ApiKeys_Authenticate_AndLimitEachKeyToItsConsentedExperts()
    {
        using var temp = new TempDirectory("keys");
        var keys = temp.File("keys.json");
        File.WriteAllText(keys, """{"keys": [{"name": "counting-app", "key": "sk-counting-0001", "experts": ["counting"]}, {"name": "ops", "key": "sk-ops-000000001", "experts": "*"}]}""");
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, ApiKeys = keys });
        using var client = app.GetTestClient();
        var request = new JsonObject { ["prompt"] = "one", ["max_tokens"] = 2, ["temperature"] = 0 };

        var (anonymous, _) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-wrong-key-000");
        var (wrong, _) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-counting-0001");
        var (scoped, scopedBody) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());
        var forbiddenRequest = request.DeepClone().AsObject();
        forbiddenRequest["experts"] = new JsonObject { ["include"] = new JsonArray("chemistry") };
        var (forbidden, forbiddenBody) = await ServingFixture.PostAsync(client, "/v1/completions", forbiddenRequest);
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-ops-000000001");
        var (all, allBody) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());

        Assert.Equal((401, 401, 200, 403, 200), (anonymous, wrong, scoped, forbidden, all));
        Assert.Equal(["public", "counting"], scopedBody["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Contains("chemistry", forbiddenBody["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(["public", "counting", "chemistry"], allBody["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
    }

    [Fact]
    public async Task FullQueue_Gets429()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, MaxBatch = 1, MaxQueue = 1 });
        using var client = app.GetTestClient();
        var requests = Enumerable.Range(0, 8).Select(_ => ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one", ["max_tokens"] = 60, ["temperature"] = 0, ["ignore_eos"] = true })).ToList();
        var statuses = (await Task.WhenAll(requests)).Select(r => r.Status).ToList();

        Assert.Contains(429, statuses);
        Assert.Contains(200, statuses);
    }

    [Fact]
    public async Task ClientThatDisconnects_FreesItsSlot()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, MaxBatch = 1 });
        using var client = app.GetTestClient();
        using (var cancel = new CancellationTokenSource())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent("""{"prompt": "one", "max_tokens": 120, "temperature": 0, "ignore_eos": true, "stream": true}""", Encoding.UTF8, "application/json") };
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            using var stream = await response.Content.ReadAsStreamAsync(cancel.Token);
            var buffer = new byte[64];
            await stream.ReadAtLeastAsync(buffer, 1, throwOnEndOfStream: false, cancel.Token);
            await cancel.CancelAsync();
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (status, _) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "two", ["max_tokens"] = 2, ["temperature"] = 0 });
        Assert.Equal(200, status);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(20), "the abandoned sequence should have left its slot");
    }

    [Fact]
    public async Task ModelsHealthAndMetrics_DescribeTheCompositionAndTheTraffic()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();
        await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = "one two", ["max_tokens"] = 3, ["temperature"] = 0 });

        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!;
        var health = JsonNode.Parse(await client.GetStringAsync("/health"))!;
        var metrics = await client.GetStringAsync("/metrics");

        var experts = models["data"]![0]!["experts"]!.AsArray();
        Assert.Equal(["public", "counting", "chemistry"], experts.Select(e => e!["name"]!.GetValue<string>()));
        Assert.Equal("counting owner", experts[1]!["owner"]!.GetValue<string>());
        Assert.Equal("Apache-2.0", experts[1]!["license"]!.GetValue<string>());
        Assert.Equal("ok", health["status"]!.GetValue<string>());
        Assert.Contains("flexolmo_requests_total{endpoint=\"completions\",status=\"200\"} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_generated_tokens_total 3", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_expert_tokens_total{expert=\"public\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("flexolmo_time_to_first_token_seconds_count 1", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RevokedExpert_IsExcludedFromEveryRequestWithinThePollInterval_AndShownAsRevoked()
    {
        var options = new ServerOptions { Model = fixture.ComposedFolder, Registry = fixture.RegistryFolder, RevocationPollSeconds = 0.2 };
        await using var app = ServingFixture.InProcess(fixture.Composed, options);
        using var client = app.GetTestClient();
        var request = new JsonObject { ["prompt"] = "one two", ["max_tokens"] = 2, ["temperature"] = 0 };
        var (_, before) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());
        Assert.Contains("chemistry", before["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));

        var registry = new Registry.ExpertRegistry(new Registry.LocalStore(fixture.RegistryFolder));
        await registry.RevokeAsync("chemistry@1.0.0", "the lab withdrew consent", null, CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        JsonObject after;
        do
        {
            await Task.Delay(200);
            (_, after) = await ServingFixture.PostAsync(client, "/v1/completions", request.DeepClone().AsObject());
        }
        while (after["experts_used"]!.AsArray().Any(e => e!.GetValue<string>() == "chemistry") && DateTime.UtcNow < deadline);

        Assert.Equal(["public", "counting"], after["experts_used"]!.AsArray().Select(e => e!.GetValue<string>()));
        var models = JsonNode.Parse(await client.GetStringAsync("/v1/models"))!;
        Assert.True(models["data"]![0]!["experts"]![2]!["revoked"]!.GetValue<bool>());
    }

    [Fact]
    public async Task UnknownRoute_Gets404()
    {
        await using var app = ServingFixture.InProcess(fixture.Composed);
        using var client = app.GetTestClient();
        using var response = await client.GetAsync("/v1/nothing");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
