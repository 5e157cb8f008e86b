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
internal static class CompletionEndpoints
{
    private const long MaxBodyBytes = 8L << 20;
    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Task Completions(HttpContext context, ModelHost host, GenerationEngine engine, ServerOptions options, ApiKeyStore? keys) =>
        HandleAsync(context, chat: false, host, engine, options, keys);

    public static Task Chat(HttpContext context, ModelHost host, GenerationEngine engine, ServerOptions options, ApiKeyStore? keys) =>
        HandleAsync(context, chat: true, host, engine, options, keys);

    private static async Task HandleAsync(HttpContext context, bool chat, ModelHost host, GenerationEngine engine, ServerOptions options, ApiKeyStore? keys)
    {
        // Everything the request holds in the engine is tied to this token: a refusal, an error or a client that
        // leaves cancels it, and the engine drops the request's sequences at its next step.
        using var held = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var answered = false;
        try
        {
            var key = keys?.Authenticate(context.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null);
            using var document = await ReadBodyAsync(context).ConfigureAwait(false);
            var job = chat ? CompletionJob.ForChat(document.RootElement, host, key, options) : CompletionJob.ForCompletion(document.RootElement, host, key, options);
            var sequences = engine.SubmitAll(job.Prompts.Select(p => new GenerationRequest(p, job.Sampling, job.Experts)).ToList(), job.Experts, held.Token);
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

            answered = true;
        }
        catch (ApiException e)
        {
            await WriteErrorAsync(context, e).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
        finally
        {
            if (!answered)
            {
                await held.CancelAsync().ConfigureAwait(false); // sequences are freed by the engine thread, never here
            }
        }
    }

    /// <summary>An error as OpenAI sends it: a JSON body (or, once a stream has started, an SSE error event).</summary>
    internal static async Task WriteErrorAsync(HttpContext context, ApiException e)
    {
        var response = context.Response;
        if (!response.HasStarted)
        {
            response.StatusCode = e.Status;
            response.ContentType = "application/json";
            if (e.RetryAfterSeconds is { } seconds)
            {
                response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            await response.WriteAsync(e.Body().ToJsonString(Compact)).ConfigureAwait(false);
            return;
        }

        if (response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) == true && !context.RequestAborted.IsCancellationRequested)
        {
            await response.WriteAsync($"data: {e.Body().ToJsonString(Compact)}\n\n").ConfigureAwait(false);
            await response.Body.FlushAsync().ConfigureAwait(false);
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
            throw new ApiException(400, $"The body is not valid JSON ({e.Message}).", null, "invalid_json");
        }
        catch (BadHttpRequestException e)
        {
            throw new ApiException(e.StatusCode, $"The request body could not be read ({e.Message}).", null, "invalid_body");
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

    private static async Task StreamAsync(HttpContext context, string id, long created, CompletionJob job, IReadOnlyList<EngineSequence> sequences, bool chat, ModelHost host)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        using var gate = new SemaphoreSlim(1);
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

        // The first failing sequence stops the others' streams; the request then ends with an SSE error event.
        using var streams = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        ApiException? failure = null;
        await Task.WhenAll(sequences.Select((sequence, index) => Task.Run(async () =>
        {
            try
            {
                await foreach (var e in sequence.Events.ReadAllAsync(streams.Token).ConfigureAwait(false))
                {
                    if (e.Error is not null)
                    {
                        Interlocked.CompareExchange(ref failure, new ApiException(500, e.Error, null, "generation_failed"), null);
                        await streams.CancelAsync().ConfigureAwait(false);
                        return;
                    }

                    await Send(e.Done is null ? Chunk(index, e.Text, e.Token, null) : Chunk(index, string.Empty, null, e.Done.FinishReason)).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (failure is not null && !context.RequestAborted.IsCancellationRequested)
            {
            }
        }))).ConfigureAwait(false);
        if (failure is not null)
        {
            throw failure;
        }

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
