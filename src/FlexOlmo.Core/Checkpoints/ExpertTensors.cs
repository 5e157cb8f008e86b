using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Core.Checkpoints;

// E=experts, I=intermediate, H=hidden

/// <summary>
/// Where one expert's projection lives in a FlexOlmo checkpoint, whichever layout it was saved in: per expert
/// (<c>experts.N.gate_proj.weight</c> [I, H], what checkpoints on disk hold) or fused (transformers v5:
/// <c>experts.gate_up_proj</c> [E, 2I, H] with gate rows first, <c>experts.down_proj</c> [E, H, I]). The one place
/// that knows both layouts.
/// </summary>
public static class ExpertTensors
{
    /// <summary>
    /// The slice of expert <paramref name="expert"/>'s projection in layer <paramref name="layer"/>; null when the
    /// checkpoint holds it in neither layout. A fused tensor of an unexpected shape is returned whole (the caller's
    /// shape check names it).
    /// </summary>
    public static TensorSlice? Find(SafetensorsCheckpoint checkpoint, int numExperts, int layer, int expert, string projection, ISet<string>? used = null)
    {
        var name = TensorNames.Expert(layer, expert, projection);
        if (checkpoint.Contains(name))
        {
            used?.Add(name);
            var (file, info) = checkpoint.Locate(name);
            return TensorSlice.Whole(file, info);
        }

        var fusedName = projection == "down_proj" ? TensorNames.FusedDown(layer) : TensorNames.FusedGateUp(layer);
        if (!checkpoint.Contains(fusedName))
        {
            return null;
        }

        used?.Add(fusedName);
        var (fusedFile, fused) = checkpoint.Locate(fusedName);
        var elementSize = fused.DType.Size();
        if (fused.Shape.Length != 3 || fused.Shape[0] != numExperts || (projection != "down_proj" && fused.Shape[1] % 2 != 0))
        {
            return TensorSlice.Whole(fusedFile, fused);
        }

        var perExpert = fused.Shape[1] * fused.Shape[2] * elementSize;
        if (projection == "down_proj")
        {
            return new TensorSlice(fusedFile, fused, expert * perExpert, [fused.Shape[1], fused.Shape[2]]); // [H, I]
        }

        var half = fused.Shape[1] / 2; // I
        var upOffset = projection == "up_proj" ? half * fused.Shape[2] * elementSize : 0;
        return new TensorSlice(fusedFile, fused, (expert * perExpert) + upOffset, [half, fused.Shape[2]]); // [I, H]
    }
}
