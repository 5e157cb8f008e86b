namespace FlexOlmo.Evaluation.Extraction;

/// <summary>Normalised Levenshtein similarity of two texts: 1 - distance / length of the longer (1 for two empty texts).</summary>
public static class TextSimilarity
{
    public static double Of(string a, string b)
    {
        var longer = Math.Max(a.Length, b.Length);
        return longer == 0 ? 1.0 : 1.0 - ((double)Quickenshtein.Levenshtein.GetDistance(a, b) / longer);
    }
}
