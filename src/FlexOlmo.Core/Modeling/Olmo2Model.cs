using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=new tokens, S=cached + new tokens, H=hidden, E=experts

/// <summary>The decoder stack of OLMo-2 / FlexOlmo: embeddings, layers, final norm (HF's <c>model.</c> prefix).</summary>
public sealed class Olmo2Model : nn.Module
{
    [ComponentName(Name = "embed_tokens")]
    private readonly Olmo2Embedding _embedTokens;
    [ComponentName(Name = "layers")]
    private readonly ModuleList<Olmo2DecoderLayer> _layers;
    [ComponentName(Name = "norm")]
    private readonly Olmo2RmsNorm _norm;
    private readonly Olmo2DecoderLayer[] _layerArray;
    private readonly Olmo2RotaryEmbedding _rotary;
    private readonly Device _device;

    public Olmo2Model(Configuration.ModelConfig config, Device device, ScalarType dtype)
        : base(nameof(Olmo2Model))
    {
        _device = device;
        _embedTokens = new Olmo2Embedding(config.VocabSize, config.HiddenSize, device, dtype);
        _layerArray = Enumerable.Range(0, config.NumHiddenLayers).Select(l => new Olmo2DecoderLayer(config, l, device, dtype)).ToArray();
        _layers = new ModuleList<Olmo2DecoderLayer>(_layerArray);
        _norm = new Olmo2RmsNorm(config.HiddenSize, config.RmsNormEps, device, dtype);
        _rotary = new Olmo2RotaryEmbedding(config.HeadDim, config.RopeTheta, device.type == DeviceType.META ? CPU : device);
        RegisterComponents();
    }

    public Olmo2Embedding EmbedTokens => _embedTokens;

    public IReadOnlyList<Olmo2DecoderLayer> Layers => _layerArray;

    public Olmo2RmsNorm Norm => _norm;

    /// <summary>
    /// One step for independent sequences, each with its own cache: ids [R, 1] at positions [R, 1], one token per row,
    /// sequence s taking <paramref name="tokens"/>[s] consecutive rows (one each when null) -> final normed hidden
    /// states [R, 1, H]. Every cache advances by its sequence's tokens.
    /// </summary>
    public Tensor ForwardRows(Tensor inputIds, Tensor positionIds, IReadOnlyList<KvCache> caches, Tensor? expertBias, RouterTrace? trace, LinearMode linearMode, IReadOnlyList<int>? tokens = null)
    {
        using var scope = NewDisposeScope();
        using var context = ForwardContext.ForRows(_rotary, positionIds, caches, linearMode, tokens);
        return Run(inputIds, context, expertBias, trace).MoveToOuterDisposeScope(); // [R, 1, H]
    }

    /// <summary>
    /// ids [B, T] -> final normed hidden states [B, T, H].
    /// <paramref name="positionIds"/> [B, T] defaults to cache length + 0..T-1; <paramref name="keyMask"/> [B, S] marks real tokens.
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? positionIds, Tensor? keyMask, KvCache? cache, Tensor? expertBias, RouterTrace? trace)
    {
        using var scope = NewDisposeScope();
        var batch = inputIds.size(0);
        var tokens = inputIds.size(1);
        var past = cache?.Length ?? 0;
        positionIds ??= GarbageFreeOps.Range(past, past + tokens, _device).unsqueeze(0).expand(batch, tokens); // [B, T]
        using var context = ForwardContext.Create(_rotary, positionIds, keyMask, cache, tokens, _device);
        return Run(inputIds, context, expertBias, trace).MoveToOuterDisposeScope(); // [B, T, H]
    }

    /// <summary>
    /// The context of a training pass over ids [B, T] from position 0: causal, no cache, no padding. For callers that run
    /// the layers one at a time (activation checkpointing), with <see cref="Olmo2DecoderLayer.Forward"/>.
    /// </summary>
    public ForwardContext CausalContext(long batch, long tokens)
    {
        using var positions = arange(0, tokens, ScalarType.Int64, _device).unsqueeze(0).expand(batch, tokens); // [B, T]
        return ForwardContext.Create(_rotary, positions, null, null, tokens, _device);
    }

    /// <summary>The stack, the same for both kinds of pass: ids [B, T] -> final normed hidden states [B, T, H].</summary>
    private Tensor Run(Tensor inputIds, ForwardContext context, Tensor? expertBias, RouterTrace? trace)
    {
        var h = _embedTokens.forward(inputIds); // [B, T, H]
        foreach (var layer in _layerArray)
        {
            h = layer.Forward(h, context, expertBias, trace); // [B, T, H]
        }

        context.Advance();
        return _norm.forward(h); // [B, T, H]
    }
}
