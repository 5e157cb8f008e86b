using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// B=batch, E=experts

/// <summary>Per-row expert sets turned into the additive router bias the MoE layers use.</summary>
public static class ExpertMask
{
    /// <summary>
    /// An fp32 [B, E] tensor: 0 where a row may use an expert, -inf where it may not. Null when every row may use
    /// every expert (the layers then skip masking).
    /// </summary>
    public static Tensor? ToRouterBias(IReadOnlyList<ExpertSet> rows, int numExperts, Device device)
    {
        if (rows.All(r => r.IsAll))
        {
            return null;
        }

        var values = new float[rows.Count * numExperts];
        for (var b = 0; b < rows.Count; b++)
        {
            if (rows[b].NumExperts != numExperts)
            {
                throw new ExpertMaskException($"Row {b}'s expert selection is for {rows[b].NumExperts} experts; the model has {numExperts}.");
            }

            for (var e = 0; e < numExperts; e++)
            {
                values[(b * numExperts) + e] = rows[b].Contains(e) ? 0f : float.NegativeInfinity;
            }
        }

        return tensor(values, [rows.Count, numExperts], ScalarType.Float32).to(device); // [B, E]
    }
}
