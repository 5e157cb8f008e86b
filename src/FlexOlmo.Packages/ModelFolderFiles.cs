using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Packages;

/// <summary>
/// Which files of a Hugging Face model folder make up the model: config.json, the safetensors weights (the shards the
/// index names, or model.safetensors) and the tokenizer and generation files. Nothing else in the folder is copied or
/// published: training logs, checkpoints of a run, data, notes or keys may sit beside a model. The one rule for
/// prepare-anchor, publish and compose.
/// </summary>
public static class ModelFolderFiles
{
    public const string Config = "config.json";

    /// <summary>Files a model carries besides config and weights (tokenizer, chat template, generation defaults).</summary>
    public static readonly IReadOnlyList<string> Companions =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
        "generation_config.json", "chat_template.jinja", "chat_template.json",
    ];

    /// <summary>The model's files in <paramref name="folder"/> (names only, sorted); config and weights must exist.</summary>
    public static IReadOnlyList<string> List(string folder)
    {
        if (!File.Exists(Path.Combine(folder, Config)))
        {
            throw new PackageException($"{folder}: has no {Config}; not a Hugging Face model folder.");
        }

        using var checkpoint = SafetensorsCheckpoint.Open(folder);
        var weights = checkpoint.Files.Select(f => Path.GetFileName(f.Path)).ToList();
        if (File.Exists(Path.Combine(folder, SafetensorsCheckpoint.IndexFileName)))
        {
            weights.Add(SafetensorsCheckpoint.IndexFileName);
        }

        return weights.Append(Config).Concat(CompanionsIn(folder)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>The companion files (tokenizer, generation) present in <paramref name="folder"/>.</summary>
    public static IEnumerable<string> CompanionsIn(string folder) => Companions.Where(name => File.Exists(Path.Combine(folder, name)));
}
