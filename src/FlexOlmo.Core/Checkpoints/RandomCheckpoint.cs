using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>
/// Writes a randomly initialised model as a Hugging Face folder, one tensor at a time: names and shapes come from
/// the model built on the meta device (no memory), each tensor's values are drawn just before it is written and freed
/// after, so the peak is one tensor (in fp32) whatever the model's size. The values are those of
/// <see cref="Olmo2ForCausalLM.InitializeWeights"/> for the same seed.
/// </summary>
public static class RandomCheckpoint
{
    /// <summary>What one random model takes on disk, to check the free space before writing.</summary>
    public static long Bytes(ModelConfig config, ScalarType dtype) => Parameters(config) * ElementSize(dtype);

    /// <summary>
    /// Writes config.json and model*.safetensors (sharded above <paramref name="shardBytes"/>, with an index) into a new
    /// folder <paramref name="folder"/>, all or nothing. Returns the parameter count.
    /// </summary>
    public static long Write(ModelConfig config, string folder, ScalarType dtype, long seed, long shardBytes = CheckpointSaver.DefaultShardBytes)
    {
        if (Path.Exists(folder) && (!Directory.Exists(folder) || Directory.EnumerateFileSystemEntries(folder).Any()))
        {
            throw new CheckpointException($"--out {folder}: already exists and is not empty; nothing was written. Choose a new folder.");
        }

        var bytes = Bytes(config, dtype);
        var parent = Path.GetDirectoryName(Path.GetFullPath(folder))!;
        Directory.CreateDirectory(parent);
        var free = new DriveInfo(parent).AvailableFreeSpace;
        if (free < bytes + (64L << 20))
        {
            throw new CheckpointException(
                $"--out {folder}: the model takes {bytes / 1e9:0.00} GB and the disk has {free / 1e9:0.00} GB free; nothing was written. Free some space or choose another disk.");
        }

        if (Directory.Exists(folder))
        {
            Directory.Delete(folder); // empty: written again below, all at once
        }

        AtomicFile.WriteDirectory(folder, temporary =>
        {
            using var meta = new Olmo2ForCausalLM(config, META, dtype); // [names, shapes] only
            using var generator = new Generator((ulong)seed, CPU);
            var storage = TensorBytes.ToSafetensors(dtype);
            var tensors = meta.NamedParameters()
                .Select(p => new TensorToWrite(p.Name, storage, p.Parameter.shape, stream =>
                {
                    // Drawn in the order the writer asks for them, which is registration order: InitializeWeights' order.
                    using var values = Olmo2ForCausalLM.InitialValues(p.Parameter.shape, generator);
                    TensorBytes.Write(values, dtype, stream);
                }))
                .ToList();
            SafetensorsWriter.WriteCheckpoint(temporary, tensors, shardBytes, new Dictionary<string, string> { ["format"] = "pt" });
            config.WithStorage(Native.TorchRuntime.Name(dtype)).Save(temporary);
        });
        return bytes / ElementSize(dtype);
    }

    /// <summary>Parameters of a model of that shape (counted on the meta device, nothing allocated).</summary>
    public static long Parameters(ModelConfig config)
    {
        using var meta = new Olmo2ForCausalLM(config, META, ScalarType.Float32); // shapes only, no memory
        return meta.NamedParameters().Sum(p => p.Parameter.numel());
    }

    private static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        _ => throw new CheckpointException($"A random model is written in float32, bfloat16 or float16, not {dtype}."),
    };
}
