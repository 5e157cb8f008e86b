namespace FlexOlmo.Core.Generation;

/// <summary>
/// How prompts are prefilled: in chunks of <see cref="Tokens"/> positions from the start, each one forward pass that
/// extends the KV cache. One rule for <c>generate</c> and the server, so that a prompt gives the same numbers in both;
/// the server interleaves the chunks of a long prompt with decode steps, so that the sequences being decoded are
/// never stalled for a whole long prefill.
/// </summary>
public static class PrefillChunks
{
    /// <summary>
    /// Positions per chunk. The server runs a chunk per step together with the decoding rows, so a chunk should cost
    /// well under those rows' own step: then a long prompt holds the others less than 2x, and its own prefill, spread over
    /// those steps, takes little longer than alone. Measured by <c>flexolmo-bench serve</c> on a 2-core CPU: with 24
    /// positions the decoding clients' steps took a median 1.4-1.6x their usual time, at most 1.9-2.0x, and the prompt's
    /// first token came 1.36-1.39x as late as alone; 32 held them a median 1.7-1.9x (at most 2.2-2.3x), 48 1.7-2.2x, 64
    /// 2.3x. Fewer positions would cost every prefill more passes over the weights, and the time to first token its 1.5x
    /// bound.
    /// </summary>
    public const int Tokens = 24;

    /// <summary>The chunks of a prompt of <paramref name="length"/> positions: (start, length), in order.</summary>
    public static IEnumerable<(int Start, int Length)> Of(int length)
    {
        for (var start = 0; start < length; start += Tokens)
        {
            yield return Next(start, length);
        }
    }

    /// <summary>The chunk that follows the first <paramref name="done"/> positions of a prompt of <paramref name="length"/>.</summary>
    public static (int Start, int Length) Next(int done, int length) => (done, Math.Min(Tokens, length - done));
}
