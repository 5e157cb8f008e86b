using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>
/// Saves a model as a Hugging Face checkpoint folder: config.json plus safetensors in the per-expert layout
/// (what <c>save_pretrained</c> writes and every loader reads), sharded by size with an index.
/// </summary>
public static class CheckpointSaver
{
    public const long DefaultShardBytes = 5L * 1000 * 1000 * 1000;

    /// <summary>
    /// Writes the model into <paramref name="folder"/> (created if needed). <paramref name="storageDType"/> defaults to the
    /// model's dtype. Files are written under temporary names and renamed; callers wanting an all-or-nothing
    /// folder wrap this in <see cref="AtomicFile.WriteDirectory"/>.
    /// </summary>
    /// <param name="config">The config to write (defaults to the model's; router tuning writes its top-k back).</param>
    public static void Save(Olmo2ForCausalLM model, string folder, ScalarType? storageDType = null, long shardBytes = DefaultShardBytes, ModelConfig? config = null)
    {
        var dtype = storageDType ?? model.DType;
        Directory.CreateDirectory(folder);
        var tensors = model.NamedParameters()
            .Select(p => new TensorToWrite(p.Name, TensorBytes.ToSafetensors(dtype), p.Parameter.shape, stream => TensorBytes.Write(p.Parameter, dtype, stream)))
            .ToList();
        SafetensorsWriter.WriteCheckpoint(folder, tensors, shardBytes, new Dictionary<string, string> { ["format"] = "pt" });
        (config ?? model.Config).WithStorage(Native.TorchRuntime.Name(dtype)).Save(folder);
    }

    /// <summary>Writes the fused v5 layout instead (for tests and for tools that want it).</summary>
    public static void SaveFused(Olmo2ForCausalLM model, string folder, ScalarType? storageDType = null)
    {
        var dtype = storageDType ?? model.DType;
        var config = model.Config;
        Directory.CreateDirectory(folder);
        var tensors = new List<TensorToWrite>();
        foreach (var (name, parameter) in model.NamedParameters())
        {
            var expert = TensorNames.ParseExpert(name);
            if (expert is null)
            {
                tensors.Add(new TensorToWrite(name, TensorBytes.ToSafetensors(dtype), parameter.shape, s => TensorBytes.Write(parameter, dtype, s)));
                continue;
            }

            if (expert.Value.Expert != 0 || expert.Value.Projection == "up_proj")
            {
                continue;
            }

            var layer = model.Model.Layers[expert.Value.Layer].Moe!;
            if (expert.Value.Projection == "gate_proj")
            {
                tensors.Add(new TensorToWrite(
                    TensorNames.FusedGateUp(expert.Value.Layer),
                    TensorBytes.ToSafetensors(dtype),
                    [config.NumExperts, 2L * config.IntermediateSize, config.HiddenSize],
                    s =>
                    {
                        using var fused = stack(layer.Experts.Select(x => cat([x.GateProj.Weight, x.UpProj.Weight], 0)).ToArray()); // [E, 2I, H]
                        TensorBytes.Write(fused, dtype, s);
                    }));
            }
            else
            {
                tensors.Add(new TensorToWrite(
                    TensorNames.FusedDown(expert.Value.Layer),
                    TensorBytes.ToSafetensors(dtype),
                    [config.NumExperts, config.HiddenSize, config.IntermediateSize],
                    s =>
                    {
                        using var fused = stack(layer.Experts.Select(x => (Tensor)x.DownProj.Weight).ToArray()); // [E, H, I]
                        TensorBytes.Write(fused, dtype, s);
                    }));
            }
        }

        SafetensorsWriter.WriteFile(Path.Combine(folder, SafetensorsCheckpoint.SingleFileName), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        (config with { StorageDType = Native.TorchRuntime.Name(dtype) }).Save(folder);
    }
}
