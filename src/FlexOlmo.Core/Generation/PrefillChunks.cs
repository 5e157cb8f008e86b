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
    /// about as much as those rows' own share of a step: then a long prompt about doubles the others' step time at most,
    /// and its own prefill, spread over those steps, takes little longer than alone. 48 positions do both on a 2-core CPU
    /// (measured by <c>flexolmo-bench serve</c>: 64 held the others 2.3x, 32 would cost every prefill one more pass
    /// over the weights per 32 positions); the experts still see enough rows per chunk to run near the products' peak.
    /// </summary>
    public const int Tokens = 48;

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
