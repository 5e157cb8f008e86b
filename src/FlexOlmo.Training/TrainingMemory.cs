using FlexOlmo.Core.Configuration;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

/// <summary>
/// The memory arithmetic of a training run, and the one place that chooses activation checkpointing when it is left to
/// the run: the model's bytes once (frozen weights stay in the storage dtype), the optimiser's bytes per trained
/// parameter (fp32 master when the model computes in a narrower dtype, fp32 gradient, AdamW's two fp32 moments: 16
/// in bf16, 12 in fp32), and the activations one micro-batch keeps for its backward pass. docs/training-memory.md
/// derives each term.
/// </summary>
public sealed record TrainingMemory(long ModelBytes, long TrainedParameters, long OptimizerBytes, long ActivationBytes, bool Checkpointing)
{
    /// <summary>Tokens of the LM head's loss that are computed at once under checkpointing (bounds the logits' memory).</summary>
    public const int HeadChunkTokens = 512;

    /// <summary>Share of the machine's memory that a run without checkpointing may plan to use before checkpointing is chosen.</summary>
    public const double AutoThreshold = 0.8;

    /// <summary>Model bytes + optimiser bytes + activations: what a run cannot go below.</summary>
    public long FloorBytes => ModelBytes + OptimizerBytes + ActivationBytes;

    /// <summary>
    /// The estimate for a model of <paramref name="modelParameters"/> parameters in <paramref name="dtype"/>, of which
    /// <paramref name="trainedParameters"/> are trained, at the settings' micro-batch and sequence length.
    /// </summary>
    public static TrainingMemory Estimate(ModelConfig config, long modelParameters, long trainedParameters, ScalarType dtype, TrainingSettings settings, bool checkpointing)
    {
        long width = dtype == ScalarType.Float32 ? 4 : 2;
        var perTrained = (width == 4 ? 0 : 4) + 4 + 8; // master (when narrower), fp32 gradient, AdamW m and v
        var tokens = (long)settings.MicroBatch * settings.SeqLen;
        long h = config.HiddenSize;
        long q = config.QueryWidth;
        long kv = config.KeyValueWidth;
        long i = config.IntermediateSize;
        // Per token and layer, what autograd keeps: attention (input, q/k/v before and after their norms and rotary,
        // the attended and merged heads, o_proj's output and its norm) and the FFN (input, gate, up, SiLU(gate), the
        // product and the output, once per chosen expert, with the gathered input), each in the compute dtype.
        var attention = (4 * h) + (5 * q) + (4 * kv);
        var ffn = config.IsMoe ? (config.NumExpertsPerTok * ((4 * i) + (2 * h))) + (2 * h) : (4 * i) + (3 * h);
        var perLayer = tokens * width * (attention + ffn);
        // The loss keeps the logits in the compute dtype plus fp32 copies for the softmax and its gradient.
        var headTokens = checkpointing ? Math.Min(tokens, HeadChunkTokens) : tokens;
        var head = headTokens * config.VocabSize * (width + 12);
        var activations = checkpointing
            ? (config.NumHiddenLayers * tokens * width * h) + perLayer + head // each layer's input, then one layer at a time
            : (config.NumHiddenLayers * perLayer) + head;
        return new TrainingMemory(modelParameters * width, trainedParameters, trainedParameters * perTrained, activations, checkpointing);
    }

    /// <summary>
    /// The settings' choice (<see cref="TrainingSettings.ActivationCheckpointing"/>), or when it is left open: checkpointing
    /// exactly when the run without it would plan for more than <see cref="AutoThreshold"/> of <paramref name="machineBytes"/>.
    /// </summary>
    public static TrainingMemory Plan(ModelConfig config, long modelParameters, long trainedParameters, ScalarType dtype, TrainingSettings settings, long machineBytes)
    {
        if (settings.ActivationCheckpointing is { } chosen)
        {
            return Estimate(config, modelParameters, trainedParameters, dtype, settings, chosen);
        }

        var plain = Estimate(config, modelParameters, trainedParameters, dtype, settings, checkpointing: false);
        return plain.FloorBytes <= AutoThreshold * machineBytes ? plain : Estimate(config, modelParameters, trainedParameters, dtype, settings, checkpointing: true);
    }

    /// <summary>The machine's memory as this process may use it (the cgroup limit when there is one).</summary>
    public static long MachineBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>One line for the log: each term and the floor.</summary>
    public string Describe() =>
        $"memory plan: model {Gib(ModelBytes)} + optimiser {Gib(OptimizerBytes)} ({TrainedParameters:N0} trained parameters) + activations {Gib(ActivationBytes)} "
        + $"({(Checkpointing ? "checkpointed by layer" : "all kept")}) = {Gib(FloorBytes)}";

    private static string Gib(long bytes) => $"{bytes / (double)(1L << 30):F2} GiB";
}
