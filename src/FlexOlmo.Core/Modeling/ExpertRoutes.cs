using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

// N=tokens, k=experts per token, E=experts, M=routed (token, expert) pairs

/// <summary>
/// A batch's routed (token, expert) pairs in managed memory, grouped by expert in increasing order: each expert's
/// tokens are one contiguous run. Pairs of weight 0 or less (masked experts) are dropped, as the libtorch dispatch drops
/// them (a NaN weight is kept, as there). Within an expert, pairs keep the order of their tokens.
/// </summary>
internal sealed class ExpertRoutes
{
    private ExpertRoutes(int[] token, float[] weight, int[] perExpert)
    {
        Token = token;
        Weight = weight;
        PerExpert = perExpert;
    }

    /// <summary>The token of each pair, [M].</summary>
    public int[] Token { get; }

    /// <summary>The router weight of each pair (fp32), [M].</summary>
    public float[] Weight { get; }

    /// <summary>How many pairs each expert has, [E]; expert e's pairs start at the sum of those before it.</summary>
    public int[] PerExpert { get; }

    public int Pairs => Token.Length;

    /// <summary>
    /// Each token's pairs, in increasing pair order (so expert by expert): token t's are pairs[first[t] .. first[t + 1] - 1],
    /// for the <paramref name="tokens"/> tokens the pairs came from.
    /// </summary>
    public (int[] First, int[] Pairs) ByToken(int tokens)
    {
        var first = new int[tokens + 1];
        foreach (var t in Token)
        {
            first[t + 1]++;
        }

        for (var t = 0; t < tokens; t++)
        {
            first[t + 1] += first[t];
        }

        var next = first[..^1];
        var pairs = new int[Pairs];
        for (var pair = 0; pair < Pairs; pair++)
        {
            pairs[next[Token[pair]]++] = pair;
        }

        return (first, pairs);
    }

    /// <summary>From the top-k choices on the CPU: <paramref name="topIndices"/> [N, k] (int64) and <paramref name="topWeights"/> [N, k] (fp32).</summary>
    public static ExpertRoutes Of(Tensor topIndices, Tensor topWeights, int experts)
    {
        var k = (int)topIndices.size(1);
        var indices = GarbageFreeOps.ToArray<long>(topIndices); // [N*k]
        var weights = GarbageFreeOps.ToArray<float>(topWeights); // [N*k]
        var perExpert = new int[experts];
        foreach (var (e, w) in indices.Zip(weights))
        {
            if (!(w <= 0))
            {
                perExpert[e]++;
            }
        }

        var next = new int[experts];
        for (var e = 1; e < experts; e++)
        {
            next[e] = next[e - 1] + perExpert[e - 1];
        }

        var pairs = next[^1] + perExpert[^1];
        var token = new int[pairs];
        var weight = new float[pairs];
        for (var pair = 0; pair < indices.Length; pair++)
        {
            if (weights[pair] <= 0)
            {
                continue;
            }

            var at = next[indices[pair]]++;
            token[at] = pair / k;
            weight[at] = weights[pair];
        }

        return new ExpertRoutes(token, weight, perExpert);
    }
}
