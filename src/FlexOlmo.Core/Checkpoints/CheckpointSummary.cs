using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Core.Checkpoints;

/// <summary>What <c>inspect</c> reports of a model folder, read from config.json and the safetensors headers only (no weights are loaded).</summary>
public sealed record CheckpointSummary(
    string Folder,
    ModelConfig Config,
    long TotalParameters,
    long ActiveParametersPerToken,
    long EmbeddingParameters,
    IReadOnlyDictionary<string, int> TensorsByDType,
    IReadOnlyList<(string File, long Bytes)> Shards)
{
    public static CheckpointSummary Read(string folder)
    {
        var config = ModelConfig.Load(folder);
        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var total = 0L;
        var byDType = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var name in checkpoint.Names)
        {
            var info = checkpoint.Locate(name).Info;
            total += info.ElementCount;
            byDType[info.DType.ToString()] = byDType.GetValueOrDefault(info.DType.ToString()) + 1;
        }

        var inactive = config.IsMoe ? 3L * config.HiddenSize * config.IntermediateSize * config.NumHiddenLayers * (config.NumExperts - config.NumExpertsPerTok) : 0;
        var embedding = (long)config.VocabSize * config.HiddenSize * (config.TieWordEmbeddings ? 1 : 2);
        var shards = checkpoint.Files.Select(f => (Path.GetFileName(f.Path), new FileInfo(f.Path).Length)).ToList();
        return new CheckpointSummary(Path.GetFullPath(folder), config, total, total - inactive, embedding, byDType, shards);
    }
}
