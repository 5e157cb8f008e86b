using System.Text.Json;
using FlexOlmo.Core.Configuration;

namespace FlexOlmo.Core.Generation;

/// <summary>End-of-sequence ids for generation: generation_config.json's eos_token_id when present, else config.json's.</summary>
public static class GenerationDefaults
{
    public const string FileName = "generation_config.json";

    public static IReadOnlyList<int> EosTokenIds(string folder, ModelConfig config)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path) || new FileInfo(path).Length > (1 << 20))
        {
            return config.EosTokenIds;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (!document.RootElement.TryGetProperty("eos_token_id", out var eos))
            {
                return config.EosTokenIds;
            }

            return eos.ValueKind switch
            {
                JsonValueKind.Number => [eos.GetInt32()],
                JsonValueKind.Array => eos.EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                _ => config.EosTokenIds,
            };
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"{path}: eos_token_id must be an integer or a list of integers ({e.Message}).");
        }
    }
}
