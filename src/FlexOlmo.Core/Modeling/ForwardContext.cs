using FlexOlmo.Core.Kernels;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch (or R independent rows), T=new tokens, S=all keys (cached + new), N=heads, K=kv heads, D=head dim

/// <summary>
/// What every layer of one forward pass shares, and the one place where the two ways of running a pass differ:
/// rotary cos/sin for the new tokens, how linears treat rows (<see cref="LinearMode"/>), and where keys and values
/// go: one cache for the whole batch (with the causal flag or an explicit mask), or one cache per independent
/// sequence, each adding one token (decoding) or several (a chunk of its prompt), one token per row of the pass. The
/// attention math itself is shared (<see cref="Attend"/>).
/// </summary>
public sealed class ForwardContext : IDisposable
{
    private readonly IReadOnlyList<KvCache>? _rowCaches;
    private readonly IReadOnlyList<int>? _rowTokens;
    private readonly Tensor?[]? _chunkMasks; // per sequence: its prompt chunk's causal mask over its cache, made by the first layer

    private ForwardContext(Tensor cos, Tensor sin, Tensor? mask, bool isCausal, KvCache? cache, IReadOnlyList<KvCache>? rowCaches, LinearMode linearMode, long newTokens, IReadOnlyList<int>? rowTokens = null)
    {
        _rowTokens = rowTokens;
        _chunkMasks = rowCaches is null ? null : new Tensor?[rowCaches.Count];
        Cos = cos;
        Sin = sin;
        Mask = mask;
        IsCausal = isCausal;
        Cache = cache;
        _rowCaches = rowCaches;
        LinearMode = linearMode;
        NewTokens = newTokens;
    }

    /// <summary>[B, T, D] fp32</summary>
    public Tensor Cos { get; }

    /// <summary>[B, T, D] fp32</summary>
    public Tensor Sin { get; }

    /// <summary>[B, 1, T, S] bool, or null when <see cref="IsCausal"/> (or a single decode step without padding) suffices.</summary>
    public Tensor? Mask { get; }

    public bool IsCausal { get; }

    /// <summary>The cache the whole batch shares, or null.</summary>
    public KvCache? Cache { get; }

    public LinearMode LinearMode { get; }

    public long NewTokens { get; }

    /// <summary>
    /// A pass over a batch that shares one time axis. <paramref name="keyMask"/> [B, S] marks real tokens (false for left
    /// padding) over the cached and new positions; null means every position is real.
    /// </summary>
    public static ForwardContext Create(Olmo2RotaryEmbedding rotary, Tensor positionIds, Tensor? keyMask, KvCache? cache, long newTokens, Device device, LinearMode linearMode = LinearMode.Batched)
    {
        var (cos, sin) = rotary.Compute(positionIds); // [B, T, D]
        var past = cache?.Length ?? 0;
        if (keyMask is null && (past == 0 || newTokens == 1))
        {
            return new ForwardContext(cos, sin, null, isCausal: past == 0 && newTokens > 1, cache, null, linearMode, newTokens);
        }

        using var scope = NewDisposeScope();
        var mask = CausalMask(past, newTokens, device); // [1, 1, T, S]
        if (keyMask is not null)
        {
            var total = past + newTokens;
            var queryPositions = GarbageFreeOps.Range(past, total, device).unsqueeze(1); // [T, 1]
            var keyPositions = GarbageFreeOps.Range(0, total, device).unsqueeze(0); // [1, S]
            mask = mask.logical_and(keyMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1)); // [B, 1, T, S]
            // A padding query sees no real key; letting it see itself keeps its row finite (no NaN from an empty softmax).
            mask = mask.logical_or(keyPositions.eq(queryPositions).unsqueeze(0).unsqueeze(0));
        }

        return new ForwardContext(cos, sin, mask.MoveToOuterDisposeScope(), isCausal: false, cache, null, linearMode, newTokens);
    }

    /// <summary>
    /// One step for independent sequences, each with its own cache: sequence s adds <paramref name="tokens"/>[s] tokens
    /// (1 when decoding, a prompt chunk when prefilling), laid out one token per row, in sequence order: positions
    /// [R, 1] with R the sum of <paramref name="tokens"/> (every sequence adds one token when it is null).
    /// </summary>
    public static ForwardContext ForRows(Olmo2RotaryEmbedding rotary, Tensor positionIds, IReadOnlyList<KvCache> caches, LinearMode linearMode, IReadOnlyList<int>? tokens = null)
    {
        var rows = tokens?.Sum() ?? caches.Count;
        if (positionIds.size(0) != rows || (tokens is not null && (tokens.Count != caches.Count || tokens.Any(t => t < 1))))
        {
            throw new ArgumentException(
                $"The pass has {positionIds.size(0)} rows for {caches.Count} sequences whose token counts ({string.Join(", ", tokens ?? [])}) add up to {rows}; give one count of at least 1 per sequence, and one row per token.",
                nameof(tokens));
        }

        var (cos, sin) = rotary.Compute(positionIds); // [R, 1, D]
        return new ForwardContext(cos, sin, null, isCausal: false, null, caches, linearMode, newTokens: 1, tokens);
    }

    /// <summary>
    /// Stores this pass's keys and values of one layer and attends: query [B, N, T, D], key and value [B, K, T, D] ->
    /// [B, N, T, D]. Without a mask, on the CPU without autograd, every token is computed as a one-token decode step at
    /// its position computes it (<see cref="CpuDecodeAttention"/>), so a prefill's attention is decoding's, bit for bit. Per-sequence caches attend sequence by sequence, exactly as each sequence alone would: a decoding
    /// row over its cache, a prompt chunk (rows r..r+L-1 as one [1, N, L, D] sequence) causally over its cache.
    /// </summary>
    public Tensor Attend(int layer, Tensor query, Tensor key, Tensor value)
    {
        if (_rowCaches is { } caches)
        {
            var sequences = new CachedSequence[caches.Count];
            var row = 0L;
            for (var s = 0; s < caches.Count; s++)
            {
                var length = _rowTokens?[s] ?? 1;
                using (var scope = NewDisposeScope())
                {
                    caches[s].Store(layer, key.narrow(0, row, length).transpose(0, 2), value.narrow(0, row, length).transpose(0, 2)); // [1, K, L, D] each
                }

                var (keys, values) = caches[s].Buffers(layer); // [1, K, C, D] each
                sequences[s] = new CachedSequence(keys, values, caches[s].Length + length, length);
                row += length;
            }

            if (CpuDecodeAttention.AppliesRows(query, sequences))
            {
                return CpuDecodeAttention.AttendRows(query, sequences); // [R, N, 1, D], every row as a one-token step would compute it
            }

            return AttendEach(layer, query, caches); // [R, N, 1, D]
        }

        if (Cache is { } cache)
        {
            cache.Store(layer, key, value);
            return AttendCached(query, cache, layer, Mask, IsCausal, NewTokens); // [B, N, T, D]
        }

        if (Mask is null && (IsCausal || query.size(2) == 1) && ManagedKernels.Usable(query, key))
        {
            using var keys = key.contiguous(); // [B, K, T, D], the layout of a cache's buffers (copied only where the kernel may run: not in training, whose autograd keeps SDPA)
            using var values = value.contiguous();
            if (CpuDecodeAttention.AppliesCausal(query, keys, values, query.size(2)))
            {
                return CpuDecodeAttention.AttendCausal(query, keys, values, query.size(2)); // [B, N, T, D], each token as a decode step at its position
            }
        }

        return ScaledDotProduct(query, key, value, Mask, IsCausal); // [B, N, T, D]
    }

    /// <summary>
    /// The per-sequence caches' rows one sequence at a time, where the row kernel does not apply (another device, or a
    /// chunk longer than it takes): a decoding row over its cache, a prompt chunk (rows r..r+L-1 as one [1, N, L, D]
    /// sequence) causally over its cache through SDPA. Called after every sequence stored this layer's keys.
    /// </summary>
    private Tensor AttendEach(int layer, Tensor query, IReadOnlyList<KvCache> caches)
    {
        var outputs = new Tensor[caches.Count];
        var row = 0L;
        for (var s = 0; s < caches.Count; s++)
        {
            var length = _rowTokens?[s] ?? 1;
            if (length == 1)
            {
                outputs[s] = AttendCached(query.narrow(0, row, 1), caches[s], layer, null, isCausal: false, newTokens: 1); // [1, N, 1, D]
            }
            else
            {
                using var scope = NewDisposeScope();
                var past = caches[s].Length;
                var mask = past == 0 ? null : (_chunkMasks![s] ??= CausalMask(past, length, query.device).DetachFromDisposeScope()); // [1, 1, L, S], the same in every layer
                var chunk = query.narrow(0, row, length).transpose(0, 2); // [1, N, L, D]
                outputs[s] = AttendCached(chunk, caches[s], layer, mask, isCausal: past == 0, newTokens: length).transpose(0, 2).MoveToOuterDisposeScope(); // [L, N, 1, D]
            }

            row += length;
        }

        return GarbageFreeOps.CatRows(outputs); // [R, N, 1, D]
    }

    /// <summary>
    /// Attention over a cache that holds this pass's keys: a decode step, or a first causal pass, straight over its
    /// buffers (<see cref="CpuDecodeAttention"/>) where that kernel applies, SDPA over views of it otherwise. Called
    /// before <see cref="Advance"/>.
    /// </summary>
    private static Tensor AttendCached(Tensor query, KvCache cache, int layer, Tensor? mask, bool isCausal, long newTokens)
    {
        var (keys, values) = cache.Buffers(layer);
        var length = cache.Length + newTokens;
        if (mask is null && !isCausal && CpuDecodeAttention.Applies(query, keys, values, length))
        {
            return CpuDecodeAttention.Attend(query, keys, values, length); // [B, N, 1, D]
        }

        if (mask is null && isCausal && CpuDecodeAttention.AppliesCausal(query, keys, values, length))
        {
            return CpuDecodeAttention.AttendCausal(query, keys, values, length); // [B, N, T, D], each token as a decode step at its position
        }

        var (key, value) = cache.Through(layer, newTokens); // [B, K, S, D]
        System.Diagnostics.Debug.Assert(mask is null || mask.size(-1) == key.size(2), "mask must cover every key");
        return ScaledDotProduct(query, key, value, mask, isCausal); // [B, N, T, D]
    }

    /// <summary>Query t of <paramref name="newTokens"/> after <paramref name="past"/> cached ones sees keys 0..past+t: [1, 1, T, S] bool.</summary>
    private static Tensor CausalMask(long past, long newTokens, Device device)
    {
        using var scope = NewDisposeScope();
        var total = past + newTokens;
        var queryPositions = GarbageFreeOps.Range(past, total, device).unsqueeze(1); // [T, 1]
        var keyPositions = GarbageFreeOps.Range(0, total, device).unsqueeze(0); // [1, S]
        return keyPositions.le(queryPositions).unsqueeze(0).unsqueeze(0).MoveToOuterDisposeScope(); // [1, 1, T, S]
    }

    /// <summary>Marks this pass's tokens as cached, once every layer has stored its keys.</summary>
    public void Advance()
    {
        Cache?.Advance(NewTokens);
        for (var s = 0; s < (_rowCaches?.Count ?? 0); s++)
        {
            _rowCaches![s].Advance(_rowTokens?[s] ?? 1);
        }
    }

    /// <summary>Grouped-query attention: key/value heads repeated to the query heads, softmax in fp32 inside SDPA.</summary>
    private static Tensor ScaledDotProduct(Tensor query, Tensor key, Tensor value, Tensor? mask, bool isCausal)
    {
        var groups = query.size(1) / key.size(1);
        if (groups > 1)
        {
            key = key.repeat_interleave(groups, 1); // [B, N, S, D]
            value = value.repeat_interleave(groups, 1); // [B, N, S, D]
        }

        return nn.functional.scaled_dot_product_attention(query, key, value, mask, is_casual: isCausal); // [B, N, T, D]
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
        Mask?.Dispose();
        foreach (var mask in _chunkMasks ?? [])
        {
            mask?.Dispose();
        }
    }
}
