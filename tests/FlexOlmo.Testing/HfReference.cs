using System.Text.Json;

namespace FlexOlmo.Testing;

/// <summary>One fixture's reference.json, as transformers wrote it.</summary>
public sealed class HfReference
{
    private HfReference(string folder, JsonElement root)
    {
        Folder = folder;
        InputIds = ToLongRows(root.GetProperty("input_ids"));
        Logits = root.GetProperty("logits").EnumerateArray()
            .Select(b => b.EnumerateArray().Select(t => t.EnumerateArray().Select(x => x.GetSingle()).ToArray()).ToArray()).ToArray();
        GreedyPromptLength = root.GetProperty("greedy_prompt_len").GetInt32();
        GreedyTokens = ToLongRows(root.GetProperty("greedy_tokens"));
        DiskTensors = root.GetProperty("disk_tensors").EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.EnumerateArray().Select(x => x.GetInt64()).ToArray());
        Router = root.TryGetProperty("router", out var router)
            ? router.EnumerateArray().Select(layer => new RouterLayer(
                layer.GetProperty("router_logits").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetSingle()).ToArray()).ToArray(),
                ToLongRows(layer.GetProperty("topk_indices")),
                layer.GetProperty("topk_weights").EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetSingle()).ToArray()).ToArray())).ToArray()
            : [];
    }

    public string Folder { get; }

    /// <summary>[B][T]</summary>
    public long[][] InputIds { get; }

    /// <summary>[B][T][V]</summary>
    public float[][][] Logits { get; }

    public int GreedyPromptLength { get; }

    /// <summary>[B][prompt + new]</summary>
    public long[][] GreedyTokens { get; }

    public IReadOnlyDictionary<string, long[]> DiskTensors { get; }

    public IReadOnlyList<RouterLayer> Router { get; }

    public static HfReference Load(string fixture)
    {
        var folder = TestPaths.Fixture(fixture);
        using var document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(folder, "reference.json")));
        return new HfReference(folder, document.RootElement.Clone());
    }

    private static long[][] ToLongRows(JsonElement element) =>
        element.EnumerateArray().Select(r => r.EnumerateArray().Select(x => x.GetInt64()).ToArray()).ToArray();

    /// <summary>Router logits [N][E], chosen experts [N][k] and their weights [N][k] of one layer.</summary>
    public sealed record RouterLayer(float[][] RouterLogits, long[][] TopkIndices, float[][] TopkWeights);
}
