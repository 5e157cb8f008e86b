using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats.Safetensors;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Checkpoints;

// E=experts, I=intermediate, H=hidden

/// <summary>
/// Loads a Hugging Face checkpoint folder into <see cref="Olmo2ForCausalLM"/>, tensor by tensor from the memory map.
/// Accepts both expert layouts (<see cref="ExpertTensors"/>). Before copying anything it checks every name and shape
/// and reports every missing and unexpected tensor at once.
/// </summary>
public static class CheckpointLoader
{
    /// <summary>Reads config.json and the weights of <paramref name="folder"/>.</summary>
    public static Olmo2ForCausalLM Load(string folder, Device device, ScalarType? dtype = null)
    {
        var config = ModelConfig.Load(folder);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var model = Create(config, checkpoint, device, dtype ?? Native.TorchRuntime.ResolveDType(null, config.StorageDType));
        model.eval();
        return model;
    }

    /// <summary>
    /// A model of <paramref name="config"/> filled from <paramref name="checkpoint"/>. Names and shapes are checked on the
    /// meta device first, so a config that does not describe these weights (or claims an enormous model) is refused
    /// before a byte is allocated.
    /// </summary>
    public static Olmo2ForCausalLM Create(ModelConfig config, SafetensorsCheckpoint checkpoint, Device device, ScalarType dtype, Func<string, string>? sourceName = null, IReadOnlySet<string>? providedElsewhere = null)
    {
        sourceName ??= name => name;
        providedElsewhere ??= new HashSet<string>();
        using (var shapes = new Olmo2ForCausalLM(config, META, dtype))
        {
            Plan(shapes, checkpoint, sourceName, providedElsewhere);
        }

        var model = new Olmo2ForCausalLM(config, device, dtype);
        try
        {
            LoadInto(model, checkpoint, sourceName, providedElsewhere);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Copies every parameter of <paramref name="model"/> from <paramref name="checkpoint"/>.</summary>
    public static void LoadInto(Olmo2ForCausalLM model, SafetensorsCheckpoint checkpoint) => LoadInto(model, checkpoint, name => name, new HashSet<string>());

    /// <summary>
    /// Copies parameters from a checkpoint whose names differ: <paramref name="sourceName"/> maps a model parameter to
    /// the checkpoint tensor holding it (several parameters may share one); parameters in <paramref name="providedElsewhere"/>
    /// are left for the caller.
    /// </summary>
    public static void LoadInto(Olmo2ForCausalLM model, SafetensorsCheckpoint checkpoint, Func<string, string> sourceName, IReadOnlySet<string> providedElsewhere)
    {
        var plan = Plan(model, checkpoint, sourceName, providedElsewhere);
        using var noGrad = no_grad();
        foreach (var (parameter, slice) in plan)
        {
            using var scope = NewDisposeScope();
            var source = TensorBytes.Read(slice.File, slice.Info, slice.ByteOffset, slice.Shape);
            parameter.copy_(source.to(parameter.dtype));
        }
    }

    /// <summary>Where each parameter's bytes are; throws listing every missing, unexpected or mis-shaped tensor.</summary>
    internal static List<(Parameter Parameter, TensorSlice Slice)> Plan(Olmo2ForCausalLM model, SafetensorsCheckpoint checkpoint, Func<string, string> sourceName, IReadOnlySet<string> providedElsewhere)
    {
        var config = model.Config;
        var used = new HashSet<string>(StringComparer.Ordinal);
        var missing = new List<string>();
        var misshaped = new List<string>();
        var plan = new List<(Parameter, TensorSlice)>();
        foreach (var (name, parameter) in model.NamedParameters())
        {
            if (providedElsewhere.Contains(name))
            {
                continue;
            }

            var slice = Find(sourceName(name), config, checkpoint, used);
            if (slice is null)
            {
                missing.Add(name);
            }
            else if (!slice.Shape.SequenceEqual(parameter.shape))
            {
                misshaped.Add($"{name}: checkpoint has [{string.Join(",", slice.Shape)}], config needs [{string.Join(",", parameter.shape)}]");
            }
            else
            {
                plan.Add((parameter, slice));
            }
        }

        var unexpected = checkpoint.Names.Where(n => !used.Contains(n) && !TensorNames.IsIgnorable(n)).ToList();
        if (missing.Count + unexpected.Count + misshaped.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0)
            {
                parts.Add($"missing {missing.Count} tensor(s): {Summarise(missing)}");
            }

            if (unexpected.Count > 0)
            {
                parts.Add($"unexpected {unexpected.Count} tensor(s): {Summarise(unexpected)}");
            }

            if (misshaped.Count > 0)
            {
                parts.Add($"{misshaped.Count} tensor(s) of the wrong shape: {Summarise(misshaped)}");
            }

            throw new CheckpointException(
                $"{checkpoint.Source}: does not match its {config.ModelType} config ({string.Join("; ", parts)}). " +
                "Check that config.json belongs to these weights.");
        }

        return plan;
    }

    private static TensorSlice? Find(string name, ModelConfig config, SafetensorsCheckpoint checkpoint, HashSet<string> used)
    {
        if (checkpoint.Contains(name))
        {
            used.Add(name);
            var (file, info) = checkpoint.Locate(name);
            return TensorSlice.Whole(file, info);
        }

        return TensorNames.ParseExpert(name) is { } expert
            ? ExpertTensors.Find(checkpoint, config.NumExperts, expert.Layer, expert.Expert, expert.Projection, used)
            : null;
    }

    private static string Summarise(List<string> names) =>
        names.Count <= 12 ? string.Join(", ", names) : string.Join(", ", names.Take(12)) + $", ... ({names.Count - 12} more)";
}
