using FlexOlmo.Core.Kernels;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, K=kv heads, S=cached tokens, C=capacity, T=new tokens, D=head dim

/// <summary>
/// Keys and values of past tokens for incremental decoding, one preallocated [B, K, C, D] buffer per layer that
/// grows by doubling. All rows share one time axis; padding and finished rows are handled by the caller's
/// attention mask.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private long _capacity;

    public KvCache(int layers, long batch, long kvHeads, long headDim, long capacity, ScalarType dtype, Device device)
    {
        Batch = batch;
        KvHeads = kvHeads;
        HeadDim = headDim;
        DType = dtype;
        Device = device;
        _capacity = Math.Max(1, capacity);
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        for (var l = 0; l < layers; l++)
        {
            _keys[l] = empty([batch, kvHeads, _capacity, headDim], dtype, device).DetachFromDisposeScope(); // [B, K, C, D]
            _values[l] = empty([batch, kvHeads, _capacity, headDim], dtype, device).DetachFromDisposeScope(); // [B, K, C, D]
        }
    }

    public long Batch { get; }

    public long KvHeads { get; }

    public long HeadDim { get; }

    public ScalarType DType { get; }

    public Device Device { get; }

    /// <summary>Tokens cached so far (the same for every row).</summary>
    public long Length { get; private set; }

    public int Layers => _keys.Length;

    /// <summary>
    /// Writes this step's keys/values [B, K, T, D] for one layer after the cached ones. Call <see cref="Advance"/> once
    /// every layer has stored.
    /// </summary>
    public void Store(int layer, Tensor keys, Tensor values)
    {
        var newTokens = keys.size(2);
        EnsureCapacity(Length + newTokens);
        if (CpuCacheStore.Applies(_keys[layer], Length, keys) && CpuCacheStore.Applies(_values[layer], Length, values))
        {
            CpuCacheStore.Write(_keys[layer], Length, keys); // a decode step's few hundred bytes per head, without four libtorch calls
            CpuCacheStore.Write(_values[layer], Length, values);
            return;
        }

        _keys[layer].narrow(2, Length, newTokens).copy_(keys);
        _values[layer].narrow(2, Length, newTokens).copy_(values);
    }

    /// <summary>Views of one layer's keys and values through <paramref name="pending"/> positions stored but not yet advanced past: [B, K, S+T, D].</summary>
    public (Tensor Keys, Tensor Values) Through(int layer, long pending) =>
        (_keys[layer].narrow(2, 0, Length + pending), _values[layer].narrow(2, 0, Length + pending));

    /// <summary>The whole buffers of one layer, [B, K, C, D] each, contiguous: valid up to <see cref="Length"/> (plus what <see cref="Store"/> just wrote).</summary>
    public (Tensor Keys, Tensor Values) Buffers(int layer) => (_keys[layer], _values[layer]);

    /// <summary>Marks <paramref name="tokens"/> more positions as cached.</summary>
    public void Advance(long tokens) => Length += tokens;

    /// <summary>Drops everything after the first <paramref name="length"/> positions (for example to reuse a prompt prefix).</summary>
    public void Truncate(long length) => Length = Math.Clamp(length, 0, Length);

    /// <summary>The cached keys and values of one layer [B, K, S, D] (views, valid until the next append).</summary>

    /// <summary>Keeps only the given batch rows (rows that finished are dropped), in the given order.</summary>
    public KvCache SelectRows(long[] rows)
    {
        var result = new KvCache(Layers, rows.Length, KvHeads, HeadDim, Math.Max(Length, 1), DType, Device);
        using var index = tensor(rows, ScalarType.Int64).to(Device);
        for (var l = 0; l < Layers; l++)
        {
            var (k, v) = Through(l, 0);
            result._keys[l].narrow(2, 0, Length).copy_(k.index_select(0, index));
            result._values[l].narrow(2, 0, Length).copy_(v.index_select(0, index));
        }

        result.Length = Length;
        return result;
    }

    private void EnsureCapacity(long needed)
    {
        if (needed <= _capacity)
        {
            return;
        }

        var capacity = Math.Max(needed, _capacity * 2);
        for (var l = 0; l < _keys.Length; l++)
        {
            _keys[l] = Grow(_keys[l], capacity);
            _values[l] = Grow(_values[l], capacity);
        }

        _capacity = capacity;
    }

    private Tensor Grow(Tensor buffer, long capacity)
    {
        var grown = empty([Batch, KvHeads, capacity, HeadDim], DType, Device).DetachFromDisposeScope(); // [B, K, C', D]
        grown.narrow(2, 0, Length).copy_(buffer.narrow(2, 0, Length));
        buffer.Dispose();
        return grown;
    }

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values))
        {
            t.Dispose();
        }
    }
}
