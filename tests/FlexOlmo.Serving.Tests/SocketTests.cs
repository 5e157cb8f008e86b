using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace FlexOlmo.Serving.Tests;

/// <summary>Kestrel on 127.0.0.1 with real sockets: the official OpenAI .NET client, and concurrent load.</summary>
[Collection(ServingCollection.Name)]
public sealed class SocketTests(ServingFixture fixture)
{
    [Fact]
    public async Task OpenAiClient_ChatCompletion_WorksAgainstTheServer_WithExpertMasks()
    {
        var (app, address) = ServingFixture.OnSocket(fixture.Composed);
        await using var _ = app;
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") }).GetChatClient("served");
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };

        ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("one two three")], options);

        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
        var models = await new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") }).GetOpenAIModelClient().GetModelsAsync();
        Assert.Equal("served", Assert.Single(models.Value).Id);
    }

    [Fact]
    public async Task OpenAiClient_StreamingChat_ReceivesTheSameTextAsTheNonStreamingCall()
    {
        var (app, address) = ServingFixture.OnSocket(fixture.Composed);
        await using var _ = app;
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(address, "/v1") }).GetChatClient("served");
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 10 };
        ChatCompletion whole = await client.CompleteChatAsync([new UserChatMessage("H2O + CO2")], options);

        var streamed = new System.Text.StringBuilder();
        var updates = 0;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("H2O + CO2")], options))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }
        }

        Assert.True(updates >= 10, $"expected one update per token, got {updates}");
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
    }

    [Fact]
    public async Task SixtyFourConcurrentClients_WithRandomMasks_AllGet200AndTheAnswerTheyGetAlone()
    {
        var (app, address) = ServingFixture.OnSocket(fixture.Composed, new ServerOptions { Model = fixture.ComposedFolder, MaxBatch = 16, MaxQueue = 128 });
        await using var _ = app;
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
        var random = new Random(42);
        string[] prompts = ["one two three", "the cat sees", "H2O + CO2 ->", "seven eight", "a dog likes a", "NaCl + CH4"];
        var requests = Enumerable.Range(0, 64).Select(i =>
        {
            var request = new JsonObject { ["prompt"] = prompts[random.Next(prompts.Length)], ["max_tokens"] = 6 + random.Next(10), ["temperature"] = 0 };
            request["experts"] = random.Next(3) switch
            {
                0 => null,
                1 => new JsonObject { ["exclude"] = new JsonArray(random.Next(2) == 0 ? "counting" : "chemistry") },
                _ => new JsonObject { ["include"] = new JsonArray(random.Next(2) == 0 ? "counting" : "chemistry") },
            };
            if (i % 5 == 0)
            {
                request["temperature"] = 0.9;
                request["seed"] = i;
            }

            return request;
        }).ToList();

        var concurrent = await Task.WhenAll(requests.Select(r => Send(http, r)));
        var alone = new List<(int, string)>();
        foreach (var r in requests)
        {
            alone.Add(await Send(http, r));
        }

        Assert.All(concurrent, c => Assert.Equal(200, c.Status));
        Assert.Equal(alone, concurrent);
    }

    private static async Task<(int Status, string TokenIds)> Send(HttpClient http, JsonObject request)
    {
        using var response = await http.PostAsJsonAsync("/v1/completions", request.DeepClone());
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return ((int)response.StatusCode, body["choices"]?[0]?["token_ids"]?.ToJsonString() ?? body.ToJsonString());
    }
}
