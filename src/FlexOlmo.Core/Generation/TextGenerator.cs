using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Formats;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Generation;

// B=batch (active rows), P=longest prompt, S=cached tokens, V=vocabulary, E=experts

/// <summary>One prompt to continue.</summary>
public sealed record GenerationRequest(IReadOnlyList<int> PromptIds, SamplingOptions Sampling, ExpertSet? Experts = null);

/// <summary>The continuation of one prompt (prompt excluded). <see cref="Text"/> is null without a tokenizer.</summary>
public sealed record GenerationResult(IReadOnlyList<int> TokenIds, string? Text, string FinishReason);

/// <summary>A token as it is produced, with the text that became complete with it (possibly empty).</summary>
public sealed record GenerationEvent(int Row, int TokenId, string Text);

/// <summary>
/// Batched incremental decoding: prompts of different lengths are left-padded (padding masked out of attention,
/// positions counted from each row's first real token) and prefilled in <see cref="PrefillChunks"/>, one KV cache
/// serves the batch, every row has its own expert mask and sampler, and finished rows leave the batch. A lone prompt
/// is prefilled exactly as the server prefills it (<see cref="PrefillChunk(Olmo2ForCausalLM, Tensor, long, KvCache, Tensor?)"/>),
/// so <c>generate</c> and <c>serve</c> give it the same tokens.
/// </summary>
public sealed class TextGenerator(Olmo2ForCausalLM model, ITextTokenizer? tokenizer)
{
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<GenerationRequest> requests, Action<GenerationEvent>? onToken = null, CancellationToken cancellationToken = default)
    {
        if (requests.Count == 0)
        {
            return [];
        }

        var config = model.Config;
        foreach (var request in requests)
        {
            Validate(request);
        }

        var allRows = requests.Select(r => new SequenceState(r, tokenizer)).ToList();
        var indexOf = allRows.Select((row, i) => (row, i)).ToDictionary(x => x.row, x => x.i);
        var rows = allRows;
        var longest = requests.Max(r => r.PromptIds.Count);
        var capacity = longest + requests.Max(r => r.Sampling.MaxNewTokens);
        var pad = config.PadTokenId ?? 0;
        using var noGrad = no_grad();
        var cache = model.CreateCache(rows.Count, capacity);
        try
        {
            using var scope = NewDisposeScope();
            var device = model.Device;
            var ids = new long[rows.Count * longest];
            var keyMask = new bool[rows.Count * longest];
            var positions = new long[rows.Count * longest];
            for (var b = 0; b < rows.Count; b++)
            {
                var prompt = requests[b].PromptIds;
                var offset = longest - prompt.Count;
                for (var t = 0; t < longest; t++)
                {
                    var real = t >= offset;
                    ids[(b * longest) + t] = real ? prompt[t - offset] : pad;
                    keyMask[(b * longest) + t] = real;
                    positions[(b * longest) + t] = real ? t - offset : 0;
                }
            }

            var mask = tensor(keyMask, [rows.Count, longest]).to(device); // [B, P]
            var padded = keyMask.Contains(false);
            var bias = ExpertBias(rows);
            var promptIds = tensor(ids, [rows.Count, longest]).to(device); // [B, P]
            var promptPositions = tensor(positions, [rows.Count, longest]).to(device); // [B, P]
            var logits = empty(0);
            foreach (var (start, length) in PrefillChunks.Of(longest, model.Config))
            {
                logits.Dispose(); // only the last chunk's logits are needed
                if (rows.Count == 1)
                {
                    logits = PrefillChunk(model, promptIds.narrow(1, start, length), start, cache, bias); // [1, 1, V]
                    continue;
                }

                logits = model.Forward(
                    promptIds.narrow(1, start, length),
                    new ForwardOptions
                    {
                        PositionIds = promptPositions.narrow(1, start, length),
                        KeyMask = padded ? mask.narrow(1, 0, start + length) : null,
                        Cache = cache,
                        ExpertBias = bias,
                        LastTokenOnly = true,
                    }); // [B, 1, V]
            }

            var nextPositions = rows.Select(r => (long)r.Request.PromptIds.Count).ToArray();
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var next = new long[rows.Count];
                for (var b = 0; b < rows.Count; b++)
                {
                    var token = rows[b].Sampler.Sample(logits[b, 0]);
                    var text = rows[b].Accept(token);
                    onToken?.Invoke(new GenerationEvent(indexOf[rows[b]], token, text));
                    next[b] = token;
                }

                var keep = Enumerable.Range(0, rows.Count).Where(b => !rows[b].Finished).ToArray();
                if (keep.Length == 0)
                {
                    break;
                }

                if (keep.Length < rows.Count)
                {
                    var index = tensor(keep.Select(k => (long)k).ToArray()).to(device);
                    var smaller = cache.SelectRows(keep.Select(k => (long)k).ToArray());
                    cache.Dispose();
                    cache = smaller;
                    var selected = mask.index_select(0, index);
                    mask.Dispose();
                    mask = selected;
                    rows = keep.Select(k => rows[k]).ToList();
                    next = keep.Select(k => next[k]).ToArray();
                    nextPositions = keep.Select(k => nextPositions[k]).ToArray();
                    bias = ExpertBias(rows);
                }

                var grown = cat([mask, ones([rows.Count, 1], ScalarType.Bool, device)], 1); // [B, S+1]
                mask.Dispose();
                mask = grown;
                logits.Dispose();
                using var stepIds = tensor(next, [rows.Count, 1]).to(device); // [B, 1]
                using var stepPositions = tensor(nextPositions, [rows.Count, 1]).to(device); // [B, 1]
                logits = model.Forward(
                    stepIds,
                    new ForwardOptions
                    {
                        PositionIds = stepPositions,
                        KeyMask = padded ? mask : null,
                        Cache = cache,
                        ExpertBias = bias,
                        LastTokenOnly = true,
                    }); // [B, 1, V]
                for (var b = 0; b < rows.Count; b++)
                {
                    nextPositions[b]++;
                }
            }
        }
        finally
        {
            cache.Dispose();
        }

        return allRows.Select(r => r.Result!).ToList();
    }

    /// <summary>
    /// One chunk of a lone prompt (ids [1, L] from position <paramref name="start"/>), computed as the server computes
    /// it in a step it may share with other sequences: one token per row, rows independent of each other. So a prompt
    /// gets the same tokens from <c>generate</c> as from <c>serve</c>, whatever else the server is doing. -> [1, 1, V]
    /// </summary>
    public static Tensor PrefillChunk(Olmo2ForCausalLM model, Tensor ids, long start, KvCache cache, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        var length = (int)ids.size(1);
        var positions = GarbageFreeOps.Range(start, start + length, model.Device).unsqueeze(1); // [L, 1]
        var rowBias = bias?.expand(length, -1); // [L, E]
        return model.ForwardRows(ids.reshape(length, 1), positions, [cache], rowBias, null, LinearMode.RowInvariant, [length]).MoveToOuterDisposeScope(); // [1, 1, V]
    }

    private Tensor? ExpertBias(IReadOnlyList<SequenceState> rows) =>
        model.Config.IsMoe && rows.Any(r => r.Request.Experts is not null)
            ? ExpertMask.ToRouterBias(rows.Select(r => r.Request.Experts ?? ExpertSet.All(model.Config.NumExperts)).ToArray(), model.Config.NumExperts, model.Device)
            : null;

    private void Validate(GenerationRequest request)
    {
        var config = model.Config;
        request.Sampling.Validate();
        if (request.PromptIds.Count == 0)
        {
            throw new FlexOlmoException("The prompt is empty; give at least one token.");
        }

        var bad = request.PromptIds.FirstOrDefault(id => id < 0 || id >= config.VocabSize, -1);
        if (bad != -1 || request.PromptIds.Contains(-1))
        {
            throw new FlexOlmoException($"Prompt token {bad} is outside the vocabulary (0..{config.VocabSize - 1}).");
        }

        if (request.PromptIds.Count + request.Sampling.MaxNewTokens > config.MaxPositionEmbeddings)
        {
            throw new FlexOlmoException(
                $"Prompt ({request.PromptIds.Count} tokens) + max new tokens ({request.Sampling.MaxNewTokens}) exceeds the model's max_position_embeddings ({config.MaxPositionEmbeddings}).");
        }

        if (request.Sampling.StopStrings.Count > 0 && tokenizer is null)
        {
            throw new FlexOlmoException("Stop strings need a tokenizer; this model has none.");
        }

        if (request.Experts is { } experts && experts.NumExperts != config.NumExperts)
        {
            throw new ExpertMaskException($"The expert selection is for {experts.NumExperts} experts; the model has {config.NumExperts}.");
        }
    }
}
