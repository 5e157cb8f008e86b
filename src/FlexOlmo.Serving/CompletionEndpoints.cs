using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using FlexOlmo.Core.Generation;
using Microsoft.AspNetCore.Http;

namespace FlexOlmo.Serving;

/// <summary>
/// POST /v1/completions and /v1/chat/completions: OpenAI-compatible, with the "experts" extension on the request and
/// "token_ids" / "experts_used" on the response; "stream": true answers with server-sent events ending in [DONE].
/// </summary>
public static class CompletionEndpoints
{
    private const long MaxBodyBytes = 8L << 20;
    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Task Completions(HttpContext context, ModelHost host, GenerationEngine engine, ServerMetrics metrics, ServerOptions options, ApiKeyStore? keys) =>
        HandleAsync(context, "completions", chat: false, host, engine, metrics, options, keys);

    public static Task Chat(HttpContext context, ModelHost host, GenerationEngine engine, ServerMetrics metrics, ServerOptions options, ApiKeyStore? keys) =>
        HandleAsync(context, "chat/completions", chat: true, host, engine, metrics, options, keys);

    private static async Task HandleAsync(HttpContext context, string endpoint, bool chat, ModelHost host, GenerationEngine engine, ServerMetrics metrics, ServerOptions options, ApiKeyStore? keys)
    {
        var sequences = new List<EngineSequence>();
        var status = 200;
        try
        {
            var key = keys?.Authenticate(context.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null);
            using var document = await ReadBodyAsync(context).ConfigureAwait(false);
            var job = chat ? CompletionJob.ForChat(document.RootElement, host, key, options) : CompletionJob.ForCompletion(document.RootElement, host, key, options);
            foreach (var prompt in job.Prompts)
            {
                sequences.Add(engine.Submit(new GenerationRequest(prompt, job.Sampling, job.Experts), job.Experts, context.RequestAborted));
            }

            var id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
            var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (job.Stream)
            {
                await StreamAsync(context, id, created, job, sequences, chat, host).ConfigureAwait(false);
            }
            else
            {
                var results = new List<(GenerationResult Result, EngineSequence Sequence)>();
                foreach (var sequence in sequences)
                {
                    results.Add((await CollectAsync(sequence, context.RequestAborted).ConfigureAwait(false), sequence));
                }

                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(Response(id, created, job, results, chat, host).ToJsonString(Compact), context.RequestAborted).ConfigureAwait(false);
            }
        }
        catch (ApiException e)
        {
            status = e.Status;
            if (!context.Response.HasStarted)
            {
                context.Response.StatusCode = e.Status;
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(e.Body().ToJsonString(Compact)).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            status = 499; // the client went away; its sequences are dropped at the next decode step
        }
        finally
        {
            metrics.Request(endpoint, status); // sequences are freed by the engine thread, never here
        }
    }

    private static async Task<JsonDocument> ReadBodyAsync(HttpContext context)
    {
        if (context.Request.ContentLength > MaxBodyBytes)
        {
            throw new ApiException(413, $"The request body is larger than {MaxBodyBytes >> 20} MiB.");
        }

        try
        {
            return await JsonDocument.ParseAsync(context.Request.Body, new JsonDocumentOptions { MaxDepth = 32 }, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw new ApiException(400, $"The body is not valid JSON ({e.Message}).");
        }
    }

    private static async Task<GenerationResult> CollectAsync(EngineSequence sequence, CancellationToken cancellationToken)
    {
        await foreach (var e in sequence.Events.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (e.Error is not null)
            {
                throw new ApiException(500, e.Error, null, "generation_failed");
            }

            if (e.Done is not null)
            {
                return e.Done;
            }
        }

        throw new ApiException(500, "The sequence ended without a result.", null, "generation_failed");
    }

    private static JsonObject Response(string id, long created, CompletionJob job, List<(GenerationResult Result, EngineSequence Sequence)> results, bool chat, ModelHost host)
    {
        var choices = new JsonArray();
        foreach (var ((result, _), index) in results.Select((r, i) => (r, i)))
        {
            var choice = new JsonObject { ["index"] = index };
            if (chat)
            {
                choice["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text };
            }
            else
            {
                choice["text"] = result.Text;
                choice["logprobs"] = null;
            }

            choice["finish_reason"] = result.FinishReason;
            choice["token_ids"] = new JsonArray(result.TokenIds.Select(t => (JsonNode)t).ToArray());
            choices.Add(choice);
        }

        var promptTokens = job.Prompts.Sum(p => p.Length);
        var completionTokens = results.Sum(r => r.Result.TokenIds.Count);
        return new JsonObject
        {
            ["id"] = id,
            ["object"] = chat ? "chat.completion" : "text_completion",
            ["created"] = created,
            ["model"] = job.Model,
            ["choices"] = choices,
            ["usage"] = new JsonObject { ["prompt_tokens"] = promptTokens, ["completion_tokens"] = completionTokens, ["total_tokens"] = promptTokens + completionTokens },
            ["experts_used"] = ExpertsUsed(results.Select(r => r.Sequence), host),
        };
    }

    private static JsonArray ExpertsUsed(IEnumerable<EngineSequence> sequences, ModelHost host)
    {
        var used = sequences.SelectMany(s => (s.Effective ?? s.Experts).Allowed).Distinct().Order();
        return host.NumExperts == 0 ? [] : new JsonArray(used.Select(i => (JsonNode)host.Experts[i].Name).ToArray());
    }

    private static async Task StreamAsync(HttpContext context, string id, long created, CompletionJob job, List<EngineSequence> sequences, bool chat, ModelHost host)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var gate = new SemaphoreSlim(1);
        async Task Send(JsonObject chunk)
        {
            await gate.WaitAsync(context.RequestAborted).ConfigureAwait(false);
            try
            {
                await response.WriteAsync($"data: {chunk.ToJsonString(Compact)}\n\n", context.RequestAborted).ConfigureAwait(false);
                await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        }

        JsonObject Chunk(int index, string text, int? token, string? finish)
        {
            var choice = new JsonObject { ["index"] = index };
            if (chat)
            {
                choice["delta"] = finish is null ? new JsonObject { ["content"] = text } : new JsonObject();
            }
            else
            {
                choice["text"] = text;
                choice["logprobs"] = null;
            }

            choice["finish_reason"] = finish;
            choice["token_ids"] = token is null ? new JsonArray() : new JsonArray(token.Value);
            return new JsonObject
            {
                ["id"] = id,
                ["object"] = chat ? "chat.completion.chunk" : "text_completion",
                ["created"] = created,
                ["model"] = job.Model,
                ["choices"] = new JsonArray(choice),
            };
        }

        if (chat)
        {
            for (var i = 0; i < sequences.Count; i++)
            {
                var first = Chunk(i, string.Empty, null, null);
                first["choices"]![0]!["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = string.Empty };
                await Send(first).ConfigureAwait(false);
            }
        }

        await Task.WhenAll(sequences.Select((sequence, index) => Task.Run(async () =>
        {
            await foreach (var e in sequence.Events.ReadAllAsync(context.RequestAborted).ConfigureAwait(false))
            {
                if (e.Error is not null)
                {
                    throw new ApiException(500, e.Error, null, "generation_failed");
                }

                await Send(e.Done is null ? Chunk(index, e.Text, e.Token, null) : Chunk(index, string.Empty, null, e.Done.FinishReason)).ConfigureAwait(false);
            }
        }))).ConfigureAwait(false);
        var promptTokens = job.Prompts.Sum(p => p.Length);
        var completionTokens = sequences.Sum(s => s.State.Tokens.Count);
        var last = new JsonObject
        {
            ["id"] = id,
            ["object"] = chat ? "chat.completion.chunk" : "text_completion",
            ["created"] = created,
            ["model"] = job.Model,
            ["choices"] = new JsonArray(),
            ["usage"] = new JsonObject { ["prompt_tokens"] = promptTokens, ["completion_tokens"] = completionTokens, ["total_tokens"] = promptTokens + completionTokens },
            ["experts_used"] = ExpertsUsed(sequences, host),
        };
        await Send(last).ConfigureAwait(false);
        await response.WriteAsync("data: [DONE]\n\n", context.RequestAborted).ConfigureAwait(false);
        await response.Body.FlushAsync(context.RequestAborted).ConfigureAwait(false);
        Debug.Assert(sequences.All(s => s.State.Finished), "every sequence finished before [DONE]");
    }
}
