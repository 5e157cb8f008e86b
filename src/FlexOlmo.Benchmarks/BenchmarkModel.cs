using System.Text.Json.Nodes;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>The benchmark FlexOlmo of the model-core issue: hidden 1024, 8 layers, 8 experts, top-2.</summary>
internal static class BenchmarkModel
{
    public static ModelConfig Config(int hidden = 1024, int layers = 8, int experts = 8, int topK = 2, int intermediate = 2816, int vocab = 50304) => new()
    {
        ModelType = ModelConfig.FlexOlmo,
        VocabSize = vocab,
        HiddenSize = hidden,
        IntermediateSize = intermediate,
        NumHiddenLayers = layers,
        NumAttentionHeads = hidden / 64,
        NumKeyValueHeads = hidden / 64,
        HeadDim = 64,
        RmsNormEps = 1e-6,
        RopeTheta = 500000,
        MaxPositionEmbeddings = 4096,
        NumExperts = experts,
        NumExpertsPerTok = topK,
        Raw = new JsonObject(),
    };

    public static Olmo2ForCausalLM Create(ModelConfig config, Device device, ScalarType dtype)
    {
        var model = new Olmo2ForCausalLM(config, device, dtype);
        using var noGrad = no_grad();
        manual_seed(1);
        foreach (var (_, parameter) in model.NamedParameters())
        {
            if (parameter.dim() == 1)
            {
                parameter.fill_(1.0);
            }
            else
            {
                parameter.normal_(0, 0.02);
            }
        }

        model.eval();
        return model;
    }

    /// <summary>Matmul parameters one token touches: attention, router, k experts, lm_head.</summary>
    public static long ActiveMatmulParameters(ModelConfig c)
    {
        var attention = ((long)c.HiddenSize * c.QueryWidth * 2) + ((long)c.HiddenSize * c.KeyValueWidth * 2);
        var router = (long)c.NumExperts * c.HiddenSize;
        var experts = (long)c.NumExpertsPerTok * 3 * c.HiddenSize * c.IntermediateSize;
        return (c.NumHiddenLayers * (attention + router + experts)) + ((long)c.VocabSize * c.HiddenSize);
    }

    /// <summary>
    /// Forward FLOPs of a causal sequence of <paramref name="tokens"/>: 2 per active matmul parameter per token, plus
    /// QK^T and AV over the causal half (2 * 2 * T^2/2 * N*D per layer).
    /// </summary>
    public static double ForwardFlops(ModelConfig c, long batch, long tokens) =>
        batch * ((2.0 * ActiveMatmulParameters(c) * tokens) + (2.0 * tokens * tokens * c.QueryWidth * c.NumHiddenLayers));
}
