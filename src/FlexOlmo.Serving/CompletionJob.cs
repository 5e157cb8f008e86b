using System.Security.Cryptography;
using System.Text.Json;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;

namespace FlexOlmo.Serving;

/// <summary>
/// A parsed and checked completion or chat request: the prompts as token ids, sampling, the experts it may use and
/// whether to stream. Every refusal is an <see cref="ApiException"/> naming the parameter.
/// </summary>
public sealed record CompletionJob(IReadOnlyList<int[]> Prompts, SamplingOptions Sampling, ExpertSet Experts, bool Stream, string Model)
{
    private const int MaxPrompts = 64;
    private const int MaxStops = 4;

    /// <summary>Parses /v1/completions: prompt as text, token ids, or arrays of either.</summary>
    public static CompletionJob ForCompletion(JsonElement body, ModelHost host, ApiKey? key, ServerOptions options)
    {
        if (!body.TryGetProperty("prompt", out var prompt))
        {
            throw new ApiException(400, "'prompt' is required (text, token ids, or an array of either).", "prompt");
        }

        var prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [Encode(host, prompt.GetString()!)],
            JsonValueKind.Array when prompt.GetArrayLength() == 0 => throw new ApiException(400, "'prompt' is empty.", "prompt"),
            JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number => [Ids(prompt, "prompt")],
            JsonValueKind.Array => prompt.EnumerateArray().Select((p, i) => p.ValueKind switch
            {
                JsonValueKind.String => Encode(host, p.GetString()!),
                JsonValueKind.Array => Ids(p, $"prompt[{i}]"),
                _ => throw new ApiException(400, $"prompt[{i}] must be text or an array of token ids.", "prompt"),
            }).ToList(),
            _ => throw new ApiException(400, "'prompt' must be text, token ids, or an array of either.", "prompt"),
        };
        return Build(body, prompts, host, key, options, defaultMaxTokens: 16);
    }

    /// <summary>Parses /v1/chat/completions: messages rendered with the model's chat template.</summary>
    public static CompletionJob ForChat(JsonElement body, ModelHost host, ApiKey? key, ServerOptions options)
    {
        if (host.ChatTemplate is null || host.Tokenizer is null)
        {
            throw new ApiException(400, "This model's tokenizer has no chat template (tokenizer_config.json 'chat_template'); use /v1/completions.", "messages", "no_chat_template");
        }

        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw new ApiException(400, "'messages' must be a non-empty array of {role, content}.", "messages");
        }

        var chat = messages.EnumerateArray().Select((m, i) =>
        {
            var role = m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : throw new ApiException(400, $"messages[{i}].role is required.", "messages");
            var content = m.TryGetProperty("content", out var c) ? c.ValueKind switch
            {
                JsonValueKind.String => c.GetString()!,
                JsonValueKind.Array => string.Concat(c.EnumerateArray().Where(p => p.TryGetProperty("type", out var t) && t.GetString() == "text").Select(p => p.GetProperty("text").GetString())),
                JsonValueKind.Null => string.Empty,
                _ => throw new ApiException(400, $"messages[{i}].content must be text.", "messages"),
            } : string.Empty;
            return new ChatMessage(role, content);
        }).ToList();
        string text;
        try
        {
            var eos = host.EosTokenIds.Count > 0 ? host.Tokenizer.Decode([host.EosTokenIds[0]]) : null;
            text = host.ChatTemplate.Render(chat, null, eos, addGenerationPrompt: true);
        }
        catch (ChatTemplateException e)
        {
            throw new ApiException(400, e.Message, "messages", "chat_template");
        }

        return Build(body, [Encode(host, text)], host, key, options, defaultMaxTokens: options.MaxTokens);
    }

    private static CompletionJob Build(JsonElement body, List<int[]> prompts, ModelHost host, ApiKey? key, ServerOptions options, int defaultMaxTokens)
    {
        if (prompts.Count > MaxPrompts)
        {
            throw new ApiException(400, $"At most {MaxPrompts} prompts per request.", "prompt");
        }

        if (Int(body, "n") is { } n && n != 1)
        {
            throw new ApiException(400, "Only n = 1 is supported; send several prompts instead.", "n");
        }

        var maxTokens = Int(body, "max_completion_tokens") ?? Int(body, "max_tokens") ?? defaultMaxTokens;
        if (maxTokens < 1 || maxTokens > options.MaxTokens)
        {
            throw new ApiException(400, $"max_tokens must be between 1 and {options.MaxTokens} (got {maxTokens}).", "max_tokens");
        }

        var vocabulary = host.Model.Config.VocabSize;
        foreach (var prompt in prompts)
        {
            if (prompt.Length == 0)
            {
                throw new ApiException(400, "A prompt is empty.", "prompt");
            }

            if (prompt.Length > options.MaxPromptTokens)
            {
                throw new ApiException(400, $"A prompt has {prompt.Length} tokens; this server takes at most {options.MaxPromptTokens}.", "prompt", "prompt_too_long");
            }

            if (prompt.Length + maxTokens > host.Model.Config.MaxPositionEmbeddings)
            {
                throw new ApiException(400, $"prompt ({prompt.Length} tokens) + max_tokens ({maxTokens}) exceeds the model's context of {host.Model.Config.MaxPositionEmbeddings}.", "max_tokens", "context_length_exceeded");
            }

            if (prompt.Any(id => id < 0 || id >= vocabulary))
            {
                throw new ApiException(400, $"Token ids must be in 0..{vocabulary - 1}.", "prompt");
            }
        }

        var temperature = Number(body, "temperature") ?? 1.0;
        var topP = Number(body, "top_p") ?? 1.0;
        var stops = body.TryGetProperty("stop", out var stop) ? stop.ValueKind switch
        {
            JsonValueKind.String => [stop.GetString()!],
            JsonValueKind.Array => stop.EnumerateArray().Select(s => s.GetString() ?? string.Empty).ToArray(),
            JsonValueKind.Null => [],
            _ => throw new ApiException(400, "'stop' must be text or an array of up to 4 texts.", "stop"),
        } : Array.Empty<string>();
        if (stops.Length > MaxStops || stops.Any(string.IsNullOrEmpty))
        {
            throw new ApiException(400, "'stop' takes up to 4 non-empty texts.", "stop");
        }

        if (stops.Length > 0 && host.Tokenizer is null)
        {
            throw new ApiException(400, "'stop' needs a tokenizer; this model has none.", "stop");
        }

        var sampling = new SamplingOptions
        {
            MaxNewTokens = maxTokens,
            Temperature = temperature,
            TopP = topP,
            TopK = Int(body, "top_k") ?? 0,
            Seed = Int(body, "seed") ?? RandomNumberGenerator.GetInt32(int.MaxValue),
            StopStrings = stops,
            EosTokenIds = body.TryGetProperty("ignore_eos", out var ignore) && ignore.ValueKind == JsonValueKind.True ? [] : host.EosTokenIds.ToArray(),
        };
        try
        {
            sampling.Validate();
        }
        catch (Formats.FlexOlmoException e)
        {
            throw new ApiException(400, e.Message, e.Message.Split(' ')[0]);
        }

        var model = body.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : host.Name;
        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        return new CompletionJob(prompts, sampling, ResolveExperts(body, host, key), stream, model);
    }

    /// <summary>
    /// The request's "experts" extension ({"include": [...]} or {"exclude": [...]}, names or indices) within what the key
    /// allows; the public expert always stays. Without the field: everything the key allows.
    /// </summary>
    private static ExpertSet ResolveExperts(JsonElement body, ModelHost host, ApiKey? key)
    {
        var allowed = key?.Allowed ?? host.AllExperts;
        if (!body.TryGetProperty("experts", out var experts) || experts.ValueKind == JsonValueKind.Null)
        {
            return allowed;
        }

        if (host.NumExperts == 0)
        {
            throw new ApiException(400, "'experts' needs a FlexOlmo (mixture-of-experts) model; this one is dense.", "experts");
        }

        if (experts.ValueKind != JsonValueKind.Object)
        {
            throw new ApiException(400, "'experts' must be {\"include\": [...]} or {\"exclude\": [...]}.", "experts");
        }

        var hasInclude = experts.TryGetProperty("include", out var include);
        var hasExclude = experts.TryGetProperty("exclude", out var exclude);
        if (hasInclude == hasExclude)
        {
            throw new ApiException(400, hasInclude ? "Give 'experts.include' or 'experts.exclude', not both." : "'experts' needs 'include' or 'exclude'.", "experts", "invalid_experts");
        }

        var list = hasInclude ? include : exclude;
        if (list.ValueKind != JsonValueKind.Array)
        {
            throw new ApiException(400, "The expert list must be an array of names or indices.", "experts");
        }

        var named = list.EnumerateArray().Select(e => host.ResolveExpert(e.ValueKind == JsonValueKind.Number ? e.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture) : e.GetString() ?? string.Empty, "experts")).ToList();
        if (hasInclude && named.Count == 0)
        {
            throw new ApiException(400, "'experts.include' is empty; name at least one expert (the public one always stays).", "experts", "empty_experts");
        }

        if (hasExclude && named.Contains(0))
        {
            throw new ApiException(400, "The public expert (0) always stays; it cannot be excluded.", "experts", "invalid_experts");
        }

        var forbidden = named.Where(e => !allowed.Contains(e)).Select(e => host.Experts[e].Name).ToList();
        if (forbidden.Count > 0)
        {
            throw new ApiException(403, $"This API key may not use {string.Join(", ", forbidden)} (its owners have not consented for this key).", "experts", "expert_not_allowed");
        }

        return hasInclude
            ? ExpertSet.Include(host.NumExperts, named.Append(0))
            : allowed.Without(named);
    }

    private static int[] Encode(ModelHost host, string text)
    {
        if (host.Tokenizer is null)
        {
            throw new ApiException(400, "This model has no tokenizer (no tokenizer.json and not a dolma2 vocabulary); send the prompt as token ids.", "prompt", "no_tokenizer");
        }

        return host.Tokenizer.Encode(text).ToArray();
    }

    private static int[] Ids(JsonElement array, string param) =>
        array.EnumerateArray().Select(x => x.TryGetInt32(out var id) ? id : throw new ApiException(400, $"{param} must hold integer token ids.", "prompt")).ToArray();

    private static int? Int(JsonElement body, string name) =>
        body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.TryGetInt32(out var i) ? i : throw new ApiException(400, $"'{name}' must be an integer.", name)
            : null;

    private static double? Number(JsonElement body, string name) =>
        body.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.TryGetDouble(out var d) ? d : throw new ApiException(400, $"'{name}' must be a number.", name)
            : null;
}
