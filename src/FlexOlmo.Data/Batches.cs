using static TorchSharp.torch;

namespace FlexOlmo.Data;

// B=instances, L=sequence length

/// <summary>Builds [B, L+1] token tensors from dataset instances.</summary>
public static class Batches
{
    public static Tensor Make(TokenDataset data, IReadOnlyList<long> instances, int seqLen, Device device)
    {
        var tokens = new long[instances.Count * (seqLen + 1)];
        for (var b = 0; b < instances.Count; b++)
        {
            data.ReadInstance(instances[b], seqLen, tokens.AsSpan(b * (seqLen + 1), seqLen + 1));
        }

        return tensor(tokens, [instances.Count, seqLen + 1]).to(device); // [B, L+1]
    }
}
