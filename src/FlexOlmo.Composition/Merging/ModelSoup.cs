using System.Text.Json;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using static TorchSharp.torch;

namespace FlexOlmo.Composition.Merging;

// L=layers, E=experts, H=hidden, I=intermediate

/// <summary>What <c>flexolmo soup</c> was asked to do.</summary>
public sealed record SoupRequest
{
    /// <summary>A composed FlexOlmo model folder.</summary>
    public required string Model { get; init; }

    /// <summary>Weight per expert name (router order names, "public" for the anchor's FFN); null or empty for uniform.</summary>
    public IReadOnlyDictionary<string, double>? Weights { get; init; }

    public required string Out { get; init; }

    public long ShardBytes { get; init; } = ShardSize.Default;
}

/// <summary>The dense model written, and the weight each expert got (normalised to sum 1).</summary>
public sealed record SoupResult(string Folder, IReadOnlyDictionary<string, double> Weights);

/// <summary>
/// Model soup, the baseline FlexOlmo is compared with (paper §4): one dense OLMo-2 model whose FFN in every layer is
/// the weighted average of the composed model's expert FFNs (the public one included), and whose other tensors are the
/// anchor's, which every expert shares. The average is taken in fp32 and stored in the checkpoint's dtype.
/// </summary>
public static class ModelSoup
{
    public const string RecordFile = "flexolmo-soup.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static SoupResult Merge(SoupRequest request, CancellationToken cancellationToken = default)
    {
        if (!File.Exists(Path.Combine(request.Model, ModelConfig.FileName)))
        {
            throw new SoupException($"--model {request.Model}: has no config.json; give a composed FlexOlmo model folder.");
        }

        var config = ModelConfig.Load(request.Model);
        if (!config.IsMoe)
        {
            throw new SoupException($"--model {request.Model}: is a dense model; a soup averages the experts of a composed FlexOlmo model.");
        }

        var names = ComposedSidecar.ExpertNamesOf(request.Model, config.NumExperts);
        var weights = Normalise(names, request.Weights);
        using var flex = SafetensorsCheckpoint.Open(request.Model);
        CheckExperts(flex, config, request.Model);
        var ffn = Enumerable.Range(0, config.NumHiddenLayers)
            .SelectMany(layer => TensorNames.FfnProjections.Select(projection => (Name: TensorNames.DenseMlp(layer, projection), Layer: layer, Projection: projection)))
            .ToDictionary(t => t.Name);
        var tensors = PublicPart.Tensors(flex, config).Select(t => ffn.TryGetValue(t.DenseName, out var mlp)
            ? new TensorToWrite(t.DenseName, t.Slice.DType, t.Slice.Shape, stream => WriteAverage(flex, config, mlp.Layer, mlp.Projection, weights, t.Slice, stream, cancellationToken))
            : new TensorToWrite(t.DenseName, t.Slice.DType, t.Slice.Shape, stream => t.Slice.CopyTo(stream))).ToList();
        var byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => weights[p.i]);
        AtomicFile.WriteDirectory(request.Out, staging =>
        {
            SafetensorsWriter.WriteCheckpoint(staging, tensors, request.ShardBytes, new Dictionary<string, string> { ["format"] = "pt" });
            PublicPart.DenseConfig(config).Save(staging);
            foreach (var file in ModelFolderFiles.CompanionsIn(request.Model))
            {
                File.Copy(Path.Combine(request.Model, file), Path.Combine(staging, file));
            }

            var record = new Dictionary<string, object> { ["kind"] = "model-soup", ["source"] = Path.GetFullPath(request.Model), ["weights"] = byName, ["tool"] = ToolInfo.Current };
            File.WriteAllText(Path.Combine(staging, RecordFile), JsonSerializer.Serialize(record, Indented) + "\n");
        });
        return new SoupResult(Path.GetFullPath(request.Out), byName);
    }

    /// <summary>
    /// Every expert's FFN projections exist with the shape the config gives ([I, H] for gate and up, [H, I] for down),
    /// checked before anything is written, so a checkpoint whose experts disagree is refused by name.
    /// </summary>
    private static void CheckExperts(SafetensorsCheckpoint flex, ModelConfig config, string model)
    {
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            foreach (var projection in TensorNames.FfnProjections)
            {
                long[] expected = projection == "down_proj" ? [config.HiddenSize, config.IntermediateSize] : [config.IntermediateSize, config.HiddenSize];
                for (var e = 0; e < config.NumExperts; e++)
                {
                    var slice = ExpertTensors.Find(flex, config.NumExperts, layer, e, projection)
                        ?? throw new SoupException($"--model {model}: has no tensor for expert {e}'s {projection} in layer {layer}.");
                    if (!slice.Shape.SequenceEqual(expected))
                    {
                        throw new SoupException(
                            $"--model {model}: expert {e}'s {projection} in layer {layer} is [{string.Join(",", slice.Shape)}], not [{string.Join(",", expected)}] as config.json says; the checkpoint is damaged.");
                    }
                }
            }
        }
    }

    /// <summary>The weights in router order, each finite and non-negative, summing to 1; every name must be an expert of the model.</summary>
    internal static double[] Normalise(IReadOnlyList<string> names, IReadOnlyDictionary<string, double>? given)
    {
        if (given is null || given.Count == 0)
        {
            return names.Select(_ => 1.0 / names.Count).ToArray();
        }

        foreach (var (name, weight) in given)
        {
            if (!names.Contains(name))
            {
                throw new SoupException($"--weights {name}: the model has no expert of that name; its experts are {string.Join(", ", names)}.");
            }

            if (!double.IsFinite(weight) || weight < 0)
            {
                throw new SoupException($"--weights {name}={weight}: a weight must be a finite number, zero or more.");
            }
        }

        var raw = names.Select(n => given.TryGetValue(n, out var w) ? w : 0).ToArray();
        var sum = raw.Sum();
        if (sum <= 0)
        {
            throw new SoupException("--weights: at least one expert needs a weight above zero.");
        }

        return raw.Select(w => w / sum).ToArray();
    }

    /// <summary>Σ_e w_e · W_e for one projection of one layer, [I, H] or [H, I], accumulated in fp32.</summary>
    private static void WriteAverage(SafetensorsCheckpoint flex, ModelConfig config, int layer, string projection, double[] weights, TensorSlice like, Stream stream, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var scope = NewDisposeScope();
        Tensor? sum = null;
        for (var e = 0; e < config.NumExperts; e++)
        {
            if (weights[e] == 0)
            {
                continue;
            }

            var slice = ExpertTensors.Find(flex, config.NumExperts, layer, e, projection)!; // checked by CheckExperts
            var values = TensorBytes.Read(slice.File, slice.Info, slice.ByteOffset, slice.Shape).to(ScalarType.Float32) * weights[e]; // [I, H] or [H, I]
            sum = sum is null ? values : sum + values;
        }

        TensorBytes.Write(sum!, TensorBytes.ToScalarType(like.DType, flex.Source), stream);
    }
}
