using FlexOlmo.Core.Configuration;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, T=tokens, H=hidden, V=vocabulary

/// <summary>
/// Olmo2ForCausalLM / FlexOlmoForCausalLM: the decoder stack plus the language-model head. Which one it is follows
/// <see cref="ModelConfig.ModelType"/>; parameter names are the Hugging Face state-dict keys.
/// </summary>
public sealed class Olmo2ForCausalLM : nn.Module
{
    [ComponentName(Name = "model")]
    private readonly Olmo2Model _model;
    [ComponentName(Name = "lm_head")]
    private readonly Olmo2Linear? _lmHead;

    public Olmo2ForCausalLM(ModelConfig config, Device device, ScalarType dtype)
        : base(config.IsMoe ? "FlexOlmoForCausalLM" : "Olmo2ForCausalLM")
    {
        Native.TorchRuntime.EnsureInitialized();
        Config = config;
        Device = device;
        DType = dtype;
        _model = new Olmo2Model(config, device, dtype);
        _lmHead = config.TieWordEmbeddings ? null : new Olmo2Linear(config.HiddenSize, config.VocabSize, device, dtype); // [V, H]
        RegisterComponents();
    }

    public ModelConfig Config { get; }

    public Device Device { get; }

    public ScalarType DType { get; }

    public Olmo2Model Model => _model;

    /// <summary>The output projection [V, H] (the embedding table when tied).</summary>
    public Parameter LmHeadWeight => _lmHead?.Weight ?? _model.EmbedTokens.Weight;

    /// <summary>ids [B, T] -> logits [B, T, V] (or [B, 1, V] with <see cref="ForwardOptions.LastTokenOnly"/>), in the model dtype.</summary>
    public Tensor Forward(Tensor inputIds, ForwardOptions? options = null)
    {
        using var scope = NewDisposeScope();
        var hidden = ForwardHidden(inputIds, options); // [B, T, H]
        if (options?.LastTokenOnly == true)
        {
            hidden = hidden.narrow(1, hidden.size(1) - 1, 1); // [B, 1, H]
        }

        return Olmo2Linear.Apply(hidden, LmHeadWeight).MoveToOuterDisposeScope(); // [B, T, V]
    }

    /// <summary>The part after the layers: final norm, then the LM head. Last layer's output [B, T, H] -> logits [B, T, V].</summary>
    public Tensor Head(Tensor layersOutput)
    {
        using var scope = NewDisposeScope();
        return Olmo2Linear.Apply(_model.Norm.forward(layersOutput), LmHeadWeight).MoveToOuterDisposeScope(); // [B, T, V]
    }

    /// <summary>
    /// One step for S independent sequences, each with its own cache: ids [R, 1] at positions [R, 1] and
    /// <paramref name="expertBias"/> [R, E], one token per row, sequence s taking <paramref name="tokens"/>[s]
    /// consecutive rows (a decoding sequence 1, a prompt chunk its length; 1 each when null) -> logits [S, 1, V] of each
    /// sequence's last row. With <see cref="LinearMode.RowInvariant"/>, a sequence's logits are the same whatever else
    /// shares the step.
    /// </summary>
    public Tensor ForwardRows(Tensor inputIds, Tensor positionIds, IReadOnlyList<KvCache> caches, Tensor? expertBias = null, RouterTrace? trace = null, LinearMode linearMode = LinearMode.Batched, IReadOnlyList<int>? tokens = null)
    {
        using var scope = NewDisposeScope();
        var hidden = _model.ForwardRows(inputIds, positionIds, caches, expertBias, trace, linearMode, tokens); // [R, 1, H]
        if (tokens is not null && tokens.Any(t => t != 1))
        {
            var last = new long[tokens.Count];
            for (long s = 0, row = -1; s < tokens.Count; s++)
            {
                row += tokens[(int)s];
                last[s] = row;
            }

            hidden = hidden.index_select(0, tensor(last, device: Device)); // [S, 1, H]
        }

        return Olmo2Linear.Apply(hidden, LmHeadWeight, linearMode).MoveToOuterDisposeScope(); // [S, 1, V]
    }

    /// <summary>ids [B, T] -> final normed hidden states [B, T, H].</summary>
    public Tensor ForwardHidden(Tensor inputIds, ForwardOptions? options = null) =>
        _model.Forward(inputIds, options?.PositionIds, options?.KeyMask, options?.Cache, options?.ExpertBias, options?.Trace);

    /// <summary>A KV cache sized for this model.</summary>
    public KvCache CreateCache(long batch, long capacity) =>
        new(Config.NumHiddenLayers, batch, Config.NumKeyValueHeads, Config.HeadDim, capacity, DType, Device);

    /// <summary>
    /// Random init for training from scratch: every matrix N(0, 0.02) truncated at 3 sigma (as OLMo-2), norms 1.
    /// Deterministic for a seed, and the same values <see cref="Checkpoints.RandomCheckpoint"/> writes for it.
    /// </summary>
    public void InitializeWeights(long seed)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, CPU);
        foreach (var (_, parameter) in named_parameters())
        {
            using var values = InitialValues(parameter.shape, generator);
            parameter.copy_(values);
        }
    }

    /// <summary>
    /// The initial values of one parameter of that shape (fp32, CPU), drawing from <paramref name="generator"/>: ones for
    /// a norm's vector, N(0, 0.02) truncated at 3 sigma for a matrix. Parameters drawn in registration order from one
    /// generator give <see cref="InitializeWeights"/>.
    /// </summary>
    /// <remarks>
    /// Sampled by inverse CDF (uniform in [Phi(-3), Phi(3)], then erfinv) because TorchSharp 0.107's native
    /// trunc_normal_ fills the tensor with the constant std and ignores the generator (found by a test here).
    /// </remarks>
    public static Tensor InitialValues(long[] shape, Generator generator)
    {
        const double Std = 0.02;
        const double Bound = 0.9973002039367398; // 2 * Phi(3) - 1
        if (shape.Length == 1)
        {
            return ones(shape, ScalarType.Float32, CPU);
        }

        var values = empty(shape, ScalarType.Float32, CPU);
        values.uniform_(-Bound, Bound, generator).erfinv_().mul_(Std * Math.Sqrt(2)).clamp_(-3 * Std, 3 * Std);
        return values;
    }

    /// <summary>Parameters with their Hugging Face names, in registration order.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters() => named_parameters().ToList();

    /// <summary>Total parameters, and those active for one token (k of E experts per MoE layer).</summary>
    public (long Total, long ActivePerToken, long Embedding) CountParameters()
    {
        long total = 0;
        long inactive = 0;
        foreach (var (name, parameter) in named_parameters())
        {
            total += parameter.numel();
        }

        if (Config.IsMoe)
        {
            var perExpert = 3L * Config.HiddenSize * Config.IntermediateSize;
            inactive = Config.NumHiddenLayers * perExpert * (Config.NumExperts - Config.NumExpertsPerTok);
        }

        var embedding = (long)Config.VocabSize * Config.HiddenSize * (Config.TieWordEmbeddings ? 1 : 2);
        return (total, total - inactive, embedding);
    }
}
