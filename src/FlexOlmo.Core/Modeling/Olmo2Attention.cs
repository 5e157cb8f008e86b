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
    /// x [B, T, H] -> [B, T, H]. The same math for a batch on one cache and for independent rows on their own caches;
    /// <paramref name="context"/> says which, and how the projections treat rows.
    /// </summary>
    public Tensor Forward(Tensor x, ForwardContext context)
    {
        using var scope = NewDisposeScope();
        var batch = x.size(0);
        var tokens = x.size(1);
        var mode = context.LinearMode;
        var projected = Olmo2Linear.ApplyMany(x, [_qProj.Weight, _kProj.Weight, _vProj.Weight], mode);
        var query = _qNorm.forward(projected[0]); // [B, T, N*D]
        var key = _kNorm.forward(projected[1]); // [B, T, K*D]
        var value = projected[2]; // [B, T, K*D]
        query = query.view(batch, tokens, _heads, _headDim).transpose(1, 2); // [B, N, T, D]
        key = key.view(batch, tokens, _kvHeads, _headDim).transpose(1, 2); // [B, K, T, D]
        value = value.view(batch, tokens, _kvHeads, _headDim).transpose(1, 2); // [B, K, T, D]
        query = Olmo2RotaryEmbedding.Apply(query, context.Cos, context.Sin); // [B, N, T, D]
        key = Olmo2RotaryEmbedding.Apply(key, context.Cos, context.Sin); // [B, K, T, D]
        var attended = context.Attend(_layerIndex, query, key, value); // [B, N, T, D]
        var merged = attended.transpose(1, 2).reshape(batch, tokens, _heads * _headDim); // [B, T, N*D]
        return _oProj.Compute(merged, mode).MoveToOuterDisposeScope(); // [B, T, H]
    }
}
