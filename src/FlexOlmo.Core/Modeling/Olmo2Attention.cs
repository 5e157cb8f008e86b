using System.Diagnostics;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=new tokens, S=all keys, H=hidden, N=heads, K=kv heads, D=head dim

/// <summary>
/// Identical to Llama attention except: RMSNorm on the whole query and key projections (before the head split),
/// as OLMo-2 does. GQA by repeating key/value heads; softmax in fp32 inside SDPA.
/// </summary>
public sealed class Olmo2Attention : nn.Module
{
    [ComponentName(Name = "q_proj")]
    private readonly Olmo2Linear _qProj;
    [ComponentName(Name = "k_proj")]
    private readonly Olmo2Linear _kProj;
    [ComponentName(Name = "v_proj")]
    private readonly Olmo2Linear _vProj;
    [ComponentName(Name = "o_proj")]
    private readonly Olmo2Linear _oProj;
    [ComponentName(Name = "q_norm")]
    private readonly Olmo2RmsNorm _qNorm;
    [ComponentName(Name = "k_norm")]
    private readonly Olmo2RmsNorm _kNorm;
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly int _layerIndex;

    public Olmo2Attention(Configuration.ModelConfig config, int layerIndex, Device device, ScalarType dtype)
        : base(nameof(Olmo2Attention))
    {
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _layerIndex = layerIndex;
        _qProj = new Olmo2Linear(config.HiddenSize, config.QueryWidth, device, dtype); // [N*D, H]
        _kProj = new Olmo2Linear(config.HiddenSize, config.KeyValueWidth, device, dtype); // [K*D, H]
        _vProj = new Olmo2Linear(config.HiddenSize, config.KeyValueWidth, device, dtype); // [K*D, H]
        _oProj = new Olmo2Linear(config.QueryWidth, config.HiddenSize, device, dtype); // [H, N*D]
        _qNorm = new Olmo2RmsNorm(config.QueryWidth, config.RmsNormEps, device, dtype);
        _kNorm = new Olmo2RmsNorm(config.KeyValueWidth, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>
    /// One decode step for R independent sequences, each with its own cache: x [R, 1, H], cos/sin [R, 1, D] -> [R, 1, H].
    /// Projections are batched; attention runs per sequence exactly as a single-sequence step would.
    /// </summary>
    public Tensor ForwardRows(Tensor x, Tensor cos, Tensor sin, IReadOnlyList<KvCache> caches)
    {
        using var scope = NewDisposeScope();
        var rows = x.shape[0];
        var query = _qNorm.forward(_qProj.forward(x)).view(rows, 1, _heads, _headDim).transpose(1, 2); // [R, N, 1, D]
        var key = _kNorm.forward(_kProj.forward(x)).view(rows, 1, _kvHeads, _headDim).transpose(1, 2); // [R, K, 1, D]
        var value = _vProj.forward(x).view(rows, 1, _kvHeads, _headDim).transpose(1, 2); // [R, K, 1, D]
        query = Olmo2RotaryEmbedding.Apply(query, cos, sin); // [R, N, 1, D]
        key = Olmo2RotaryEmbedding.Apply(key, cos, sin); // [R, K, 1, D]
        var outputs = new Tensor[rows];
        for (var r = 0; r < rows; r++)
        {
            var (k, v) = caches[r].Append(_layerIndex, key.narrow(0, r, 1), value.narrow(0, r, 1)); // [1, K, S, D]
            if (_kvHeads != _heads)
            {
                k = k.repeat_interleave(_heads / _kvHeads, 1); // [1, N, S, D]
                v = v.repeat_interleave(_heads / _kvHeads, 1); // [1, N, S, D]
            }

            outputs[r] = nn.functional.scaled_dot_product_attention(query.narrow(0, r, 1), k, v); // [1, N, 1, D]
        }

        var merged = cat(outputs, 0).transpose(1, 2).reshape(rows, 1, _heads * _headDim); // [R, 1, N*D]
        return _oProj.forward(merged).MoveToOuterDisposeScope(); // [R, 1, H]
    }

    /// <summary>x [B, T, H] -> [B, T, H]</summary>
    public Tensor Forward(Tensor x, AttentionContext context)
    {
        using var scope = NewDisposeScope();
        var batch = x.shape[0];
        var tokens = x.shape[1];
        var query = _qNorm.forward(_qProj.forward(x)); // [B, T, N*D]
        var key = _kNorm.forward(_kProj.forward(x)); // [B, T, K*D]
        var value = _vProj.forward(x); // [B, T, K*D]
        query = query.view(batch, tokens, _heads, _headDim).transpose(1, 2); // [B, N, T, D]
        key = key.view(batch, tokens, _kvHeads, _headDim).transpose(1, 2); // [B, K, T, D]
        value = value.view(batch, tokens, _kvHeads, _headDim).transpose(1, 2); // [B, K, T, D]
        query = Olmo2RotaryEmbedding.Apply(query, context.Cos, context.Sin); // [B, N, T, D]
        key = Olmo2RotaryEmbedding.Apply(key, context.Cos, context.Sin); // [B, K, T, D]
        if (context.Cache is { } cache)
        {
            (key, value) = cache.Append(_layerIndex, key, value); // [B, K, S, D]
        }

        if (_kvHeads != _heads)
        {
            var groups = _heads / _kvHeads;
            key = key.repeat_interleave(groups, 1); // [B, N, S, D]
            value = value.repeat_interleave(groups, 1); // [B, N, S, D]
        }

        Debug.Assert(context.Mask is null || context.Mask.shape[^1] == key.shape[2], "mask must cover every key");
        var attended = nn.functional.scaled_dot_product_attention(query, key, value, context.Mask, is_casual: context.IsCausal); // [B, N, T, D]
        var merged = attended.transpose(1, 2).reshape(batch, tokens, _heads * _headDim); // [B, T, N*D]
        return _oProj.forward(merged).MoveToOuterDisposeScope(); // [B, T, H]
    }
}
