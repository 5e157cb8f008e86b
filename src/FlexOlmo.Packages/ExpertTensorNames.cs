namespace FlexOlmo.Packages;

/// <summary>Tensor names inside expert.safetensors: per layer, the expert FFN, its router row r_i and bias b_i.</summary>
public static class ExpertTensorNames
{
    public const string WeightsFile = "expert.safetensors";

    /// <summary>gate_proj/up_proj [I, H], down_proj [H, I].</summary>
    public static string Ffn(int layer, string projection) => $"layers.{layer}.mlp.{projection}.weight";

    /// <summary>The expert's router row r_i for one layer, [H].</summary>
    public static string RouterEmbedding(int layer) => $"layers.{layer}.router.weight";

    /// <summary>The router bias b_i for one layer, [1]; routing uses min(b_i, 0).</summary>
    public static string RouterBias(int layer) => $"layers.{layer}.router.bias";

    /// <summary>The tensor holding a router embedding vector in router_embedding.safetensors and embed-domain files.</summary>
    public const string EmbeddingVector = "router_embedding";
}
