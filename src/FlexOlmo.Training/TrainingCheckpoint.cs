using System.Text.Json;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

/// <summary>
/// A resumable checkpoint folder (written whole under a temporary name, then renamed): the trained parameters in
/// fp32, the optimiser state, and the step, tokens and settings key. A resume with other settings is refused.
/// </summary>
internal static class TrainingCheckpoint
{
    public const string FolderName = "checkpoint";
    private const string WeightsFile = "trainable.safetensors";
    private const string OptimizerFile = "optimizer.safetensors";
    private const string StateFile = "state.json";

    public sealed record State(long Step, long Tokens, string SettingsKey, IReadOnlyList<double> Losses);

    public static void Save(string folder, IReadOnlyList<(string Name, Tensor Master)> parameters, AdamWOptimizer optimizer, State state)
    {
        AtomicFile.WriteDirectory(folder, temporary =>
        {
            var tensors = parameters.Select(p => new TensorToWrite(p.Name, SafetensorsDType.F32, p.Master.shape, s => TensorBytes.Write(p.Master, ScalarType.Float32, s))).ToList();
            SafetensorsWriter.WriteFile(Path.Combine(temporary, WeightsFile), tensors);
            SafetensorsWriter.WriteFile(Path.Combine(temporary, OptimizerFile), optimizer.State().ToList());
            AtomicFile.WriteAllText(Path.Combine(temporary, StateFile), JsonSerializer.Serialize(state));
        }, overwrite: true);
    }

    public static State? Load(string folder, IReadOnlyList<(string Name, Tensor Master)> parameters, AdamWOptimizer optimizer, string settingsKey)
    {
        var statePath = Path.Combine(folder, StateFile);
        if (!File.Exists(statePath))
        {
            return null;
        }

        var state = JsonSerializer.Deserialize<State>(File.ReadAllText(statePath)) ?? throw new TrainingException($"{statePath}: empty.");
        if (state.SettingsKey != settingsKey)
        {
            throw new TrainingException($"{folder}: was written with other settings ({state.SettingsKey}); resume with the same settings, or start a new --out folder ({settingsKey}).");
        }

        using (var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, WeightsFile)))
        using (no_grad())
        {
            foreach (var (name, master) in parameters)
            {
                if (!checkpoint.Contains(name))
                {
                    throw new TrainingException($"{folder}: lacks the trained tensor '{name}'; it belongs to another job.");
                }

                var (file, info) = checkpoint.Locate(name);
                using var values = TensorBytes.Read(file, info, 0, info.Shape);
                if (!values.shape.SequenceEqual(master.shape))
                {
                    throw new TrainingException($"{folder}: '{name}' has shape [{string.Join(",", values.shape)}], the model needs [{string.Join(",", master.shape)}].");
                }

                master.copy_(values);
            }
        }

        var optimizerPath = Path.Combine(folder, OptimizerFile);
        if (!File.Exists(optimizerPath))
        {
            throw new TrainingException($"{folder}: has no {OptimizerFile} (it was written by an older version of flexolmo); start a new --out folder.");
        }

        using var moments = SafetensorsCheckpoint.Open(optimizerPath);
        optimizer.Load(moments, state.Step, folder);
        return state;
    }
}
