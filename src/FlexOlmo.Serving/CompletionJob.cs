using System.Security.Cryptography;
using System.Text.Json;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;
using static FlexOlmo.Serving.RequestFields;

namespace FlexOlmo.Serving;

/// <summary>
/// A parsed and checked completion or chat request: the prompts as token ids, sampling, the experts it may use and
/// whether to stream. Every refusal is an <see cref="ApiException"/> naming the parameter; every value that passes
/// validation is one the sampler handles (temperature 0..2 as OpenAI allows, top_p in (0, 1], any top_k and seed).
/// </summary>
internal sealed record CompletionJob(IReadOnlyList<int[]> Prompts, SamplingOptions Sampling, ExpertSet Experts, bool Stream, string Model)
{
    public const double MaxTemperature = 2.0;
    private const int MaxPrompts = 64;
    private const int MaxStops = 4;
    private const int MaxStopLength = 256;

    /// <summary>Parses /v1/completions: prompt as text, token ids, or arrays of either.</summary>
    public static CompletionJob ForCompletion(JsonElement body, ModelHost host, ApiKey? key, ServerOptions options)
    {
        RequireObject(body);
        var model = CheckModel(body, host);
        if (Get(body, "prompt") is not { } prompt)
        {
            throw new ApiException(400, "'prompt' is required (text, token ids, or an array of either).", "prompt");
        }

        List<int[]> prompts = prompt.ValueKind switch
        {
            JsonValueKind.String => [Encode(host, prompt.GetString()!)],
            JsonValueKind.Array when prompt.GetArrayLength() == 0 => throw new ApiException(400, "'prompt' is empty.", "prompt"),
            JsonValueKind.Array when prompt[0].ValueKind == JsonValueKind.Number => [Ids(prompt, "prompt")],
            JsonValueKind.Array => prompt.EnumerateArray().Select((p, i) => p.ValueKind switch
            {
                JsonValueKind.String => Encode(host, p.GetString()!),
                JsonValueKind.Array => Ids(p, $"prompt[{i}]"),
                _ => throw new ApiException(400, $"prompt[{i}] must be text or an array of token ids, not {Kind(p)}.", "prompt", "invalid_type"),
            }).ToList(),
            _ => throw new ApiException(400, $"'prompt' must be text, token ids, or an array of either, not {Kind(prompt)}.", "prompt", "invalid_type"),
        };
        return Build(body, prompts, host, key, options, defaultMaxTokens: 16, model);
    }

    /// <summary>Parses /v1/chat/completions: messages rendered with the model's chat template.</summary>
    public static CompletionJob ForChat(JsonElement body, ModelHost host, ApiKey? key, ServerOptions options)
    {
        RequireObject(body);
        var model = CheckModel(body, host);
        if (host.ChatTemplate is null || host.Tokenizer is null)
        {
            throw new ApiException(400, "This model's tokenizer has no chat template (tokenizer_config.json 'chat_template'); use /v1/completions.", "messages", "no_chat_template");
        }

        if (Get(body, "messages") is not { ValueKind: JsonValueKind.Array } messages || messages.GetArrayLength() == 0)
        {
            throw new ApiException(400, "'messages' must be a non-empty array of {role, content}.", "messages");
        }

        var chat = messages.EnumerateArray().Select((m, i) => Message(m, $"messages[{i}]")).ToList();
        string text;
        try
        {
            // The tokenizer config's bos and eos tokens, as transformers renders them; without them, the model's EOS id.
            var eos = host.ChatTemplate.EosToken ?? (host.EosTokenIds.Count > 0 ? host.Tokenizer.Decode([host.EosTokenIds[0]]) : null);
            text = host.ChatTemplate.Render(chat, host.ChatTemplate.BosToken, eos, addGenerationPrompt: true);
        }
        catch (ChatTemplateException e)
        {
            throw new ApiException(400, e.Message, "messages", "chat_template");
        }

        return Build(body, [Encode(host, text)], host, key, options, defaultMaxTokens: options.MaxTokens, model);
    }

    private static ChatMessage Message(JsonElement message, string where)
    {
        if (message.ValueKind != JsonValueKind.Object)
        {
            throw new ApiException(400, $"{where} must be an object {{role, content}}, not {Kind(message)}.", "messages", "invalid_type");
        }

        var role = Get(message, "role") is { ValueKind: JsonValueKind.String } r && r.GetString() is { Length: > 0 } name
            ? name
            : throw new ApiException(400, $"{where}.role is required and must be a string.", "messages");
        var content = Get(message, "content") switch
        {
            null => string.Empty,
            { ValueKind: JsonValueKind.String } c => c.GetString()!,
            { ValueKind: JsonValueKind.Array } parts => string.Concat(parts.EnumerateArray().Select((p, j) => TextPart(p, $"{where}.content[{j}]"))),
            { } other => throw new ApiException(400, $"{where}.content must be text or an array of text parts, not {Kind(other)}.", "messages", "invalid_type"),
        };
        return new ChatMessage(role, content);
    }

    private static string TextPart(JsonElement part, string where)
    {
        if (part.ValueKind != JsonValueKind.Object || Get(part, "type") is not { ValueKind: JsonValueKind.String } type)
        {
            throw new ApiException(400, $"{where} must be an object with a string 'type'.", "messages", "invalid_type");
        }

        if (type.GetString() != "text")
        {
            throw new ApiException(400, $"{where} has type '{type.GetString()}'; this model takes only text parts.", "messages", "unsupported_content");
        }

        return Get(part, "text") is { ValueKind: JsonValueKind.String } text
            ? text.GetString()!
            : throw new ApiException(400, $"{where}.text must be a string.", "messages", "invalid_type");
    }

    /// <summary>The request's "model": this server's model, or absent. Another name is a 404, as in OpenAI's API.</summary>
    private static string CheckModel(JsonElement body, ModelHost host)
    {
        var model = Text(body, "model");
        if (model is not null && model != host.Name)
        {
            throw new ApiException(404, $"The model '{(model.Length > 100 ? model[..100] + "..." : model)}' does not exist; this server serves '{host.Name}' (GET /v1/models).", "model", "model_not_found");
        }

        return host.Name;
    }

    private static CompletionJob Build(JsonElement body, List<int[]> prompts, ModelHost host, ApiKey? key, ServerOptions options, int defaultMaxTokens, string model)
    {
        if (prompts.Count > MaxPrompts)
        {
            throw new ApiException(400, $"At most {MaxPrompts} prompts per request.", "prompt");
        }

        if (Integer(body, "n", long.MinValue, long.MaxValue) is { } n && n != 1)
        {
            throw new ApiException(400, "Only n = 1 is supported; send several prompts instead.", "n");
        }

        var maxTokens = (int)(Integer(body, "max_completion_tokens", 1, options.MaxTokens) ?? Integer(body, "max_tokens", 1, options.MaxTokens) ?? Math.Min(defaultMaxTokens, options.MaxTokens));
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

        var stops = Stops(body);
        if (stops.Length > 0 && host.Tokenizer is null)
        {
            throw new ApiException(400, "'stop' needs a tokenizer; this model has none.", "stop");
        }

        var sampling = new SamplingOptions
        {
            MaxNewTokens = maxTokens,
            Temperature = Number(body, "temperature", 0, MaxTemperature) ?? 1.0,
            TopP = Number(body, "top_p", 0, 1, minExclusive: true) ?? 1.0,
            TopK = (int)(Integer(body, "top_k", 0, int.MaxValue) ?? 0),
            Seed = Integer(body, "seed", long.MinValue, long.MaxValue) ?? RandomNumberGenerator.GetInt32(int.MaxValue),
            StopStrings = stops,
            EosTokenIds = Boolean(body, "ignore_eos") == true ? [] : host.EosTokenIds.ToArray(),
        };
        sampling.Validate(); // the checks above are stricter; this keeps the sampler's own rule in one place
        var stream = Boolean(body, "stream") ?? false;
        return new CompletionJob(prompts, sampling, ResolveExperts(body, host, key), stream, model);
    }

    private static string[] Stops(JsonElement body)
    {
        string[] stops = Get(body, "stop") switch
        {
            null => [],
            { ValueKind: JsonValueKind.String } one => [one.GetString()!],
            { ValueKind: JsonValueKind.Array } many => many.EnumerateArray().Select((s, i) => s.ValueKind == JsonValueKind.String
                ? s.GetString()!
                : throw new ApiException(400, $"stop[{i}] must be a string, not {Kind(s)}.", "stop", "invalid_type")).ToArray(),
            { } other => throw new ApiException(400, $"'stop' must be text or an array of up to {MaxStops} texts, not {Kind(other)}.", "stop", "invalid_type"),
        };
        if (stops.Length > MaxStops || stops.Any(s => s.Length is 0 or > MaxStopLength))
        {
            throw new ApiException(400, $"'stop' takes up to {MaxStops} non-empty texts of at most {MaxStopLength} characters.", "stop");
        }

        return stops;
    }

    /// <summary>
    /// The request's "experts" extension ({"include": [...]} or {"exclude": [...]}, names or indices) within what the key
    /// allows; the public expert always stays. Without the field: everything the key allows. Including an expert the key
    /// may not use is a 403; excluding one is not (it is not used either way).
    /// </summary>
    private static ExpertSet ResolveExperts(JsonElement body, ModelHost host, ApiKey? key)
    {
        var allowed = key?.Allowed ?? host.AllExperts;
        if (Get(body, "experts") is not { } experts)
        {
            return allowed;
        }

        if (host.NumExperts == 0)
        {
            throw new ApiException(400, "'experts' needs a FlexOlmo (mixture-of-experts) model; this one is dense.", "experts");
        }

        if (experts.ValueKind != JsonValueKind.Object)
        {
            throw new ApiException(400, $"'experts' must be {{\"include\": [...]}} or {{\"exclude\": [...]}}, not {Kind(experts)}.", "experts", "invalid_type");
        }

        var include = Get(experts, "include");
        var exclude = Get(experts, "exclude");
        if (include.HasValue == exclude.HasValue)
        {
            throw new ApiException(400, include.HasValue ? "Give 'experts.include' or 'experts.exclude', not both." : "'experts' needs 'include' or 'exclude'.", "experts", "invalid_experts");
        }

        var list = (include ?? exclude)!.Value;
        var field = include.HasValue ? "experts.include" : "experts.exclude";
        if (list.ValueKind != JsonValueKind.Array)
        {
            throw new ApiException(400, $"'{field}' must be an array of expert names or indices, not {Kind(list)}.", "experts", "invalid_type");
        }

        var named = list.EnumerateArray().Select((e, i) => host.ResolveExpert(e.ValueKind switch
        {
            JsonValueKind.String => e.GetString()!,
            JsonValueKind.Number => Int32(e, $"{field}[{i}]", "experts").ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => throw new ApiException(400, $"{field}[{i}] must be an expert name or index, not {Kind(e)}.", "experts", "invalid_type"),
        }, "experts")).ToList();
        if (include.HasValue && named.Count == 0)
        {
            throw new ApiException(400, "'experts.include' is empty; name at least one expert (the public one always stays).", "experts", "empty_experts");
        }

        if (exclude.HasValue && named.Contains(0))
        {
            throw new ApiException(400, "The public expert (0) always stays; it cannot be excluded.", "experts", "invalid_experts");
        }

        if (exclude.HasValue)
        {
            return allowed.Without(named.Where(allowed.Contains));
        }

        var forbidden = named.Where(e => !allowed.Contains(e)).Select(e => host.Experts[e].Name).Distinct().ToList();
        if (forbidden.Count > 0)
        {
            throw new ApiException(403, $"This API key may not use {string.Join(", ", forbidden)} (its owners have not consented for this key).", "experts", "expert_not_allowed");
        }

        return ExpertSet.Include(host.NumExperts, named.Append(0));
    }

    private static int[] Encode(ModelHost host, string text)
    {
        if (host.Tokenizer is null)
        {
            throw new ApiException(400, "This model has no tokenizer (no tokenizer.json and not a dolma2 vocabulary); send the prompt as token ids.", "prompt", "no_tokenizer");
        }

        return host.Tokenizer.Encode(text).ToArray();
    }

    private static int[] Ids(JsonElement array, string where) =>
        array.EnumerateArray().Select((x, i) => Int32(x, $"{where}[{i}]", "prompt")).ToArray();
}
