using FlexOlmo.Core.Configuration;

namespace FlexOlmo.Core.Generation;

/// <summary>
/// How prompts are prefilled: in chunks from the start, each one forward pass that extends the KV cache. One rule for
/// <c>generate</c> and the server. On the CPU a prompt's numbers do not depend on its chunks (every token's attention
/// is computed as a one-token decode step computes it, see <c>CpuDecodeAttention.AttendRows</c>); elsewhere the shared
/// rule is what keeps <c>generate</c> and the server equal. The server interleaves the chunks
/// of a long prompt with decode steps, so that the sequences being decoded are never stalled for a whole long prefill.
/// A chunk holds at most the arithmetic of the prompt's first chunk of <see cref="Tokens"/> positions: later positions
/// attend over more cached keys, so later chunks are shorter and every step costs the decoding sequences about as much.
/// </summary>
public static class PrefillChunks
{
    /// <summary>
    /// Positions of the first chunk, and the most of any. The server runs a chunk per step together with the decoding
    /// rows, so a chunk should cost well under those rows' own step: then a long prompt holds the others less than 2x,
    /// and its own prefill, spread over those steps, takes little longer than alone. Measured by <c>flexolmo-bench
    /// serve</c> on a 2-core CPU with chunks of one fixed size: with 24 positions the decoding clients' steps took a
    /// median 1.4-1.6x their usual time, at most 1.9-2.0x, and the prompt's first token came 1.36-1.39x as late as
    /// alone; 32 held them a median 1.7-1.9x (at most 2.2-2.3x), 48 1.7-2.2x, 64 2.3x. Fewer positions would cost
    /// every prefill more passes over the weights, and the time to first token its 1.5x bound. Fixed chunks held them
    /// longest at a prompt's end, where a chunk's attention over 2,000 cached keys took 10 ms more (the chunk of this
    /// class's rule there is 17 positions on that model). With this rule, on a 2-core Xeon in 8 rounds each, a first
    /// chunk of 20 held the longest step under 2x in 7 rounds (24: 3) but kept the first token within 1.5x in 2 (24: 4);
    /// both held in 2 rounds either way.
    /// </summary>
    public const int Tokens = 24;

    /// <summary>The chunks of a prompt of <paramref name="length"/> positions for <paramref name="config"/>'s model: (start, length), in order.</summary>
    public static IEnumerable<(int Start, int Length)> Of(int length, ModelConfig config)
    {
        for (var start = 0; start < length;)
        {
            var next = Next(start, length, config);
            yield return next;
            start += next.Length;
        }
    }

    /// <summary>
    /// The chunk that follows the first <paramref name="done"/> positions of a prompt of <paramref name="length"/>: the
    /// most positions, at least one and at most <see cref="Tokens"/>, whose arithmetic (<see cref="Flops"/>) stays within
    /// that of positions 0..<see cref="Tokens"/>-1.
    /// </summary>
    public static (int Start, int Length) Next(int done, int length, ModelConfig config)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(done);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(done, length); // nothing left to prefill
        var budget = Flops(config, 0, Tokens);
        var most = Math.Min(Tokens, length - done);
        var count = 1;
        while (count < most && Flops(config, done, count + 1) <= budget)
        {
            count++;
        }

        return (done, count);
    }

    /// <summary>
    /// Forward FLOPs of positions <paramref name="start"/>..<paramref name="start"/>+<paramref name="count"/>-1 through
    /// the decoder layers: 2 per weight a position multiplies (attention projections, router, its experts or the dense
    /// MLP), plus, for the position at p, q·k and the weighted sum of values over its p+1 keys (2·2·(p+1)·N·D per layer).
    /// The LM head is left out: a chunk computes logits for its last position only.
    /// </summary>
    public static double Flops(ModelConfig config, long start, long count)
    {
        var hidden = (double)config.HiddenSize;
        var attention = hidden * ((2.0 * config.QueryWidth) + (2.0 * config.KeyValueWidth));
        var mlps = config.IsMoe ? config.NumExpertsPerTok : 1;
        var mlp = mlps * 3.0 * hidden * config.IntermediateSize;
        var router = config.IsMoe ? (double)config.NumExperts * hidden : 0;
        var perPosition = 2.0 * config.NumHiddenLayers * (attention + router + mlp);
        var keys = (count * (double)(start + 1)) + (count * (count - 1) / 2.0); // sum of p+1 over the chunk's positions
        return (count * perPosition) + (4.0 * config.QueryWidth * config.NumHiddenLayers * keys);
    }
}
