using FlexOlmo.Testing;
using FlexOlmo.Training.RouterTuning;

namespace FlexOlmo.Training.Tests;

[Collection(TrainingCollection.Name)]
public sealed class ProxyClassifierTests(TrainingFixture fixture)
{
    [Fact]
    public void Score_DocumentsOfTheOwnersKind_RankAbovePublicOnes()
    {
        // Owner documents use ids 0-9 most; public ones 10-19.
        var random = new Random(3);
        int[] Document(int offset) => [.. Enumerable.Range(0, 200).Select(_ => random.NextDouble() < 0.8 ? offset + random.Next(10) : random.Next(20))];
        var classifier = ProxyClassifier.Fit(Enumerable.Range(0, 20).Select(_ => Document(0)), Enumerable.Range(0, 20).Select(_ => Document(10)), 20);

        Assert.True(classifier.Score(Document(0)) > 0);
        Assert.True(classifier.Score(Document(10)) < 0);
        Assert.Equal(double.NegativeInfinity, classifier.Score([]));
        Assert.Equal(0, classifier.Score([500, -1])); // ids outside the vocabulary carry no evidence
    }

    [Fact]
    public void Select_WritesTheMostOwnerLikePublicDocumentsAndNothingOfTheOwners()
    {
        using var temp = new TempDirectory("proxy");
        var owner = temp.File("owner.jsonl");
        var pub = temp.File("public.jsonl");
        File.WriteAllLines(owner, Enumerable.Range(0, 10).Select(i => $"{{\"text\": \"private note {i}: the acid reacts with the base and the solution turns blue\"}}"));
        var publicTexts = Enumerable.Range(0, 20).Select(i => i % 4 == 0 ? $"public lab {i}: the acid reacts with the base" : $"public story {i}: we walked to town and sang").ToList();
        File.WriteAllLines(pub, publicTexts.Select(t => $"{{\"text\": \"{t}\"}}"));

        var result = ProxySelector.Select(new ProxyRequest { Anchor = fixture.AnchorFolder, OwnerData = [owner], PublicData = [pub], Out = temp.File("proxy.jsonl"), Fraction = 0.25 }, null, CancellationToken.None);

        Assert.Equal(20, result.PublicDocuments);
        Assert.Equal(5, result.Selected);
        var selected = File.ReadAllLines(result.Out).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!).ToList();
        Assert.Equal(publicTexts.Where((_, i) => i % 4 == 0), selected);
        Assert.DoesNotContain(selected, t => t.Contains("private", StringComparison.Ordinal));
        Assert.Contains("--fraction", Assert.Throws<TrainingException>(() => ProxySelector.Select(new ProxyRequest { Anchor = fixture.AnchorFolder, OwnerData = [owner], PublicData = [pub], Out = temp.File("x.jsonl"), Fraction = 0 }, null, CancellationToken.None)).Message, StringComparison.Ordinal);
    }
}
