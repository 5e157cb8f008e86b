using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Checkpoints;

// L=layers, E=experts, H=hidden

/// <summary>
/// The public part of a FlexOlmo checkpoint: every tensor outside the MLPs (embeddings, attention, norms, lm_head)
/// and expert 0's FFN, which is the anchor's dense MLP, plus the public router row of each layer. The one place
/// that says how a composed model relates to its dense anchor (used to import, decompose and take r_pub).
/// </summary>
public static class PublicPart
{
    /// <summary>
    /// Refuses a FlexOlmo model whose dimensions are not the dense model's (checked from the configs, before any
    /// tensor is read), naming both.
    /// </summary>
    public static void CheckDimensions(ModelConfig dense, ModelConfig flex, string flexSource)
    {
        if (flex.HiddenSize != dense.HiddenSize || flex.IntermediateSize != dense.IntermediateSize || flex.NumHiddenLayers != dense.NumHiddenLayers
            || flex.VocabSize != dense.VocabSize || flex.NumAttentionHeads != dense.NumAttentionHeads || flex.NumKeyValueHeads != dense.NumKeyValueHeads)
        {
            throw new CheckpointException(
                $"{flexSource}: has dimensions {Describe(flex)}; the anchor has {Describe(dense)}. It was not built on this anchor.");
        }

        static string Describe(ModelConfig c) => $"{c.NumHiddenLayers}x{c.HiddenSize}/{c.IntermediateSize} (vocab {c.VocabSize}, heads {c.NumAttentionHeads}/{c.NumKeyValueHeads})";
    }

    /// <summary>
    /// The dense OLMo-2 config of a FlexOlmo model's anchor: the same dimensions, tokens and RoPE, without the experts
    /// and the router's training options.
    /// </summary>
    public static ModelConfig DenseConfig(ModelConfig flex)
    {
        var raw = (System.Text.Json.Nodes.JsonObject)flex.Raw.DeepClone();
        foreach (var moeOnly in new[] { "output_router_logits", "router_aux_loss_coef", "num_local_experts", "num_experts", "num_experts_per_tok", "norm_topk_prob" })
        {
            raw.Remove(moeOnly);
        }

        return flex with { ModelType = ModelConfig.Olmo2, NumExperts = 0, NumExpertsPerTok = 0, NormTopkProb = false, Raw = raw };
    }

    /// <summary>
    /// Each tensor of the public part, with the name the dense anchor gives it, in the checkpoint's storage order for
    /// the shared tensors, then layer by layer for expert 0's projections.
    /// </summary>
    public static IEnumerable<(string DenseName, TensorSlice Slice)> Tensors(SafetensorsCheckpoint flex, ModelConfig config)
    {
        foreach (var name in flex.Names.Where(n => !n.Contains(".mlp.", StringComparison.Ordinal) && !TensorNames.IsIgnorable(n)))
        {
            var (file, info) = flex.Locate(name);
            yield return (name, TensorSlice.Whole(file, info));
        }

        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (var projection in TensorNames.FfnProjections)
            {
                var slice = ExpertTensors.Find(flex, config.NumExperts, layer, 0, projection)
                    ?? throw new CheckpointException($"{flex.Source}: has no tensor for expert 0's {projection} in layer {layer}.");
                yield return (TensorNames.DenseMlp(layer, projection), slice);
            }
        }
    }

    /// <summary>
    /// The first tensor in which <paramref name="dense"/> is not the public part of <paramref name="flex"/> (by name,
    /// dtype, shape and every byte, streamed), or null when it is exactly that.
    /// </summary>
    public static string? FirstDifference(SafetensorsCheckpoint dense, SafetensorsCheckpoint flex, ModelConfig flexConfig, CancellationToken cancellationToken = default)
    {
        var covered = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (denseName, slice) in Tensors(flex, flexConfig))
        {
            cancellationToken.ThrowIfCancellationRequested();
            covered.Add(denseName);
            if (!dense.Contains(denseName))
            {
                return $"{denseName} (the anchor has no such tensor)";
            }

            var (file, info) = dense.Locate(denseName);
            var mine = TensorSlice.Whole(file, info);
            if (mine.DType != slice.DType || !mine.Shape.SequenceEqual(slice.Shape))
            {
                return $"{denseName} (the anchor's is {mine.DType} [{string.Join(",", mine.Shape)}], the model's {slice.DType} [{string.Join(",", slice.Shape)}])";
            }

            if (!mine.SameAs(slice))
            {
                return $"{denseName} (its values differ)";
            }
        }

        var extra = dense.Names.FirstOrDefault(n => !covered.Contains(n) && !TensorNames.IsIgnorable(n));
        return extra is null ? null : $"{extra} (only the anchor has it)";
    }

    /// <summary>Expert <paramref name="expert"/>'s router row of one layer, [H].</summary>
    public static TensorSlice RouterRow(SafetensorsCheckpoint flex, ModelConfig config, int layer, int expert)
    {
        var name = TensorNames.Router(layer);
        if (!flex.Contains(name))
        {
            throw new CheckpointException($"{flex.Source}: has no router '{name}'.");
        }

        var (file, info) = flex.Locate(name);
        if (info.Shape.Length != 2 || info.Shape[0] != config.NumExperts || info.Shape[1] != config.HiddenSize)
        {
            throw new CheckpointException($"{flex.Source}: '{name}' is [{string.Join(",", info.Shape)}], not [{config.NumExperts},{config.HiddenSize}].");
        }

        return TensorSlice.Whole(file, info).Row(expert);
    }

    /// <summary>Expert <paramref name="expert"/>'s router row of every layer as float32 ([L][H]; exact for bf16, fp16 and fp32).</summary>
    public static float[][] RouterRows(SafetensorsCheckpoint flex, ModelConfig config, int expert) =>
        Enumerable.Range(0, config.NumHiddenLayers).Select(layer =>
        {
            var row = RouterRow(flex, config, layer, expert);
            using var values = TensorBytes.Read(row.File, row.Info, row.ByteOffset, row.Shape);
            using var floats = values.to(ScalarType.Float32);
            return floats.data<float>().ToArray();
        }).ToArray();
}
