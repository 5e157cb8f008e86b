namespace FlexOlmo.Data;

/// <summary>Which documents of a token dataset a job looks at: a seeded, uniform sample of those long enough.</summary>
public static class DocumentSampler
{
    /// <summary>
    /// Reservoir-samples up to <paramref name="samples"/> document ranges (EOS excluded) of at least
    /// <paramref name="minLength"/> tokens with a seeded generator, in the order they appear in the data. One pass;
    /// memory bounded by the sample.
    /// </summary>
    public static List<(long Start, long Length)> Sample(TokenDataset data, int eosId, int samples, long seed, long minLength, CancellationToken cancellationToken)
    {
        var random = new Random(unchecked((int)seed));
        var reservoir = new List<(long, long)>();
        var chunk = new long[1 << 20];
        long documentStart = 0;
        long seen = 0;
        for (long position = 0; position < data.TotalTokens; position += chunk.Length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var count = (int)Math.Min(chunk.Length, data.TotalTokens - position);
            data.Read(position, chunk.AsSpan(0, count));
            for (var i = 0; i < count; i++)
            {
                if (chunk[i] != eosId && position + i != data.TotalTokens - 1)
                {
                    continue;
                }

                var end = chunk[i] == eosId ? position + i : position + i + 1;
                if (end - documentStart >= Math.Max(1, minLength))
                {
                    seen++;
                    var document = (documentStart, end - documentStart);
                    if (reservoir.Count < samples)
                    {
                        reservoir.Add(document);
                    }
                    else
                    {
                        var slot = random.NextInt64(seen);
                        if (slot < samples)
                        {
                            reservoir[(int)slot] = document;
                        }
                    }
                }

                documentStart = position + i + 1;
            }
        }

        return reservoir.OrderBy(d => d.Item1).ToList();
    }
}
