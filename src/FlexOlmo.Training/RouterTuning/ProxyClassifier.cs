namespace FlexOlmo.Training.RouterTuning;

/// <summary>
/// The small classifier that finds public documents like an owner's data (paper §3.4: router tuning on proxy data):
/// multinomial naive Bayes over the anchor tokenizer's ids, the owner's documents against the public ones, with
/// add-one smoothing. A document's score is its mean log-likelihood ratio per token, so long and short documents
/// compare. Written here because no served .NET library offers a text classifier this small: ML.NET's would bring a
/// large dependency for thirty lines of counting.
/// </summary>
public sealed class ProxyClassifier
{
    private readonly double[] _logRatio;

    private ProxyClassifier(double[] logRatio) => _logRatio = logRatio;

    /// <summary>Fits the classifier from token ids of the owner's documents and of the public documents.</summary>
    public static ProxyClassifier Fit(IEnumerable<IReadOnlyList<int>> owner, IEnumerable<IReadOnlyList<int>> publicDocuments, int vocabularySize)
    {
        var ownerCounts = Count(owner, vocabularySize, out var ownerTotal);
        var publicCounts = Count(publicDocuments, vocabularySize, out var publicTotal);
        if (ownerTotal == 0 || publicTotal == 0)
        {
            throw new TrainingException($"the proxy classifier needs tokens on both sides (owner {ownerTotal}, public {publicTotal}).");
        }

        var ratio = new double[vocabularySize];
        for (var id = 0; id < vocabularySize; id++)
        {
            ratio[id] = Math.Log((ownerCounts[id] + 1.0) / (ownerTotal + vocabularySize)) - Math.Log((publicCounts[id] + 1.0) / (publicTotal + vocabularySize));
        }

        return new ProxyClassifier(ratio);
    }

    /// <summary>Mean log P(token | owner) / P(token | public) over the document's tokens; above 0 leans to the owner. Ids outside the vocabulary count as 0.</summary>
    public double Score(IReadOnlyList<int> tokens)
    {
        if (tokens.Count == 0)
        {
            return double.NegativeInfinity;
        }

        var sum = 0.0;
        foreach (var id in tokens)
        {
            sum += (uint)id < (uint)_logRatio.Length ? _logRatio[id] : 0;
        }

        return sum / tokens.Count;
    }

    private static long[] Count(IEnumerable<IReadOnlyList<int>> documents, int vocabularySize, out long total)
    {
        var counts = new long[vocabularySize];
        total = 0;
        foreach (var document in documents)
        {
            foreach (var id in document)
            {
                if ((uint)id < (uint)vocabularySize)
                {
                    counts[id]++;
                    total++;
                }
            }
        }

        return counts;
    }
}
