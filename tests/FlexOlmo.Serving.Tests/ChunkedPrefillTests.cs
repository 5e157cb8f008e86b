using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using Microsoft.AspNetCore.TestHost;

namespace FlexOlmo.Serving.Tests;

/// <summary>
/// A long prompt is prefilled in chunks, one per step, in the same passes as the decode steps: the sequences being
/// decoded keep getting tokens while it is prefilled, and its own tokens are exactly what <c>flexolmo generate</c>
/// gives for it.
/// </summary>
[Collection(ServingCollection.Name)]
public sealed class ChunkedPrefillTests(ServingFixture fixture)
{
    private static readonly int[] LongPrompt = Enumerable.Range(0, PrefillChunks.Tokens + (PrefillChunks.Tokens / 2)).Select(i => ((i * 37) + 11) % 500).ToArray();

    [Fact]
    public async Task ALongPrompt_IsPrefilledAlongsideTheDecodeSteps_OfTheSequencesAlreadyDecoding()
    {
        var host = fixture.Golden["flexolmo-tiny"];
        await using var app = ServingFixture.InProcess(host, new ServerOptions { Model = host.Folder, MaxBatch = 4 });
        var events = new ConcurrentQueue<string>();
        var engine = EngineHardeningTests.Engine(app);
        engine.AfterPrefillChunk = s => events.Enqueue(s.State.Request.PromptIds.Count == LongPrompt.Length ? $"long chunk to {s.Prefilled}" : "short prefill");
        engine.BeforeForward = rows => events.Enqueue($"decode {rows.Count(r => r.Prefilled == r.State.Request.PromptIds.Count)} row(s)");
        using var client = app.GetTestClient();

        // Long enough to still be decoding when the long prompt's request has crossed the test server: 30 tokens of the
        // tiny model could all be done before it arrived.
        var decoding = ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = new JsonArray(3, 4, 5), ["max_tokens"] = 200, ["temperature"] = 0, ["ignore_eos"] = true });
        while (!events.Contains("decode 1 row(s)"))
        {
            await Task.Delay(5);
        }

        var (status, _) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject { ["prompt"] = new JsonArray(LongPrompt.Select(t => (JsonNode)t).ToArray()), ["max_tokens"] = 2, ["temperature"] = 0 });
        Assert.Equal(200, (await decoding).Status);
        Assert.Equal(200, status);

        var order = events.ToList();
        var first = order.IndexOf($"long chunk to {PrefillChunks.Tokens}");
        var last = order.IndexOf($"long chunk to {LongPrompt.Length}");
        Assert.True(first >= 0 && last > first, string.Join(", ", order));
        Assert.Contains("decode 1 row(s)", order.Skip(first).Take(last - first)); // the short sequence went on while the chunks ran
    }

    [Fact]
    public async Task ALongPrompt_GetsExactlyTheTokensOfGenerate()
    {
        var host = fixture.Golden["flexolmo-tiny"];
        await using var app = ServingFixture.InProcess(host, new ServerOptions { Model = host.Folder });
        using var client = app.GetTestClient();
        var expected = new TextGenerator(host.Model, null).Generate([new GenerationRequest(LongPrompt, new SamplingOptions { MaxNewTokens = 8 }, ExpertSet.Exclude(4, [2]))])[0];

        var (status, body) = await ServingFixture.PostAsync(client, "/v1/completions", new JsonObject
        {
            ["prompt"] = new JsonArray(LongPrompt.Select(t => (JsonNode)t).ToArray()),
            ["max_tokens"] = 8,
            ["temperature"] = 0,
            ["ignore_eos"] = true,
            ["experts"] = new JsonObject { ["exclude"] = new JsonArray("expert-2") },
        });

        Assert.Equal(200, status);
        Assert.Equal(expected.TokenIds, body["choices"]![0]!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
    }
}
