using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=tokens, H=hidden, E=experts

/// <summary>
/// OLMo-2's "reordered norm" block: each sublayer's OUTPUT is normalised before the residual add, and there is no
/// input norm, so the router sees the un-normalised residual stream. The MLP is dense (olmo2) or a FlexOlmo MoE.
/// </summary>
public sealed class Olmo2DecoderLayer : nn.Module
{
    [ComponentName(Name = "self_attn")]
    private readonly Olmo2Attention _selfAttention;
    [ComponentName(Name = "mlp")]
    private readonly nn.Module _mlp;
    [ComponentName(Name = "post_attention_layernorm")]
    private readonly Olmo2RmsNorm _postAttentionLayerNorm;
    [ComponentName(Name = "post_feedforward_layernorm")]
    private readonly Olmo2RmsNorm _postFeedForwardLayerNorm;

    public Olmo2DecoderLayer(Configuration.ModelConfig config, int layerIndex, Device device, ScalarType dtype)
        : base(nameof(Olmo2DecoderLayer))
    {
        _selfAttention = new Olmo2Attention(config, layerIndex, device, dtype);
        _mlp = config.IsMoe
            ? new FlexOlmoSparseMoeBlock(config, device, dtype)
            : new Olmo2Mlp(config.HiddenSize, config.IntermediateSize, device, dtype);
        _postAttentionLayerNorm = new Olmo2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        _postFeedForwardLayerNorm = new Olmo2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        RegisterComponents();
    }

    /// <summary>The MoE block, or null in a dense model.</summary>
    public FlexOlmoSparseMoeBlock? Moe => _mlp as FlexOlmoSparseMoeBlock;

    /// <summary>The dense MLP, or null in a MoE model.</summary>
    public Olmo2Mlp? DenseMlp => _mlp as Olmo2Mlp;

    /// <summary>x [B, T, H] -> [B, T, H]; <paramref name="expertBias"/> [B, E] applies only to MoE layers.</summary>
    public Tensor Forward(Tensor x, ForwardContext context, Tensor? expertBias, RouterTrace? trace)
    {
        using var scope = NewDisposeScope();
        var attended = _selfAttention.Forward(x, context); // [B, T, H]
        var h = GarbageFreeOps.Add(x, _postAttentionLayerNorm.forward(attended)); // [B, T, H]
        var mixed = _mlp switch
        {
            FlexOlmoSparseMoeBlock moe => moe.Forward(h, expertBias, trace, context.LinearMode),
            Olmo2Mlp mlp => mlp.Compute(h, context.LinearMode),
            _ => throw new InvalidOperationException("unknown MLP module"),
        }; // [B, T, H]
        return GarbageFreeOps.Add(h, _postFeedForwardLayerNorm.forward(mixed)).MoveToOuterDisposeScope(); // [B, T, H]
    }
}
