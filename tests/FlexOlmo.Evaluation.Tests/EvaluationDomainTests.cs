namespace FlexOlmo.Evaluation.Tests;

public sealed class EvaluationDomainTests
{
    [Fact]
    public void Parse_NamePathPairs_KeepOrderAndCollectRepeatedNames()
    {
        var domains = EvaluationDomain.Parse(["news=data/news/heldout", "public=a.txt", "news=extra/*.jsonl"]);

        Assert.Equal(["news", "public"], domains.Select(d => d.Name));
        Assert.Equal(["data/news/heldout", "extra/*.jsonl"], domains[0].Paths);
    }

    [Fact]
    public void Parse_PathWithEquals_KeepsEverythingAfterTheFirst() =>
        Assert.Equal("dir/a=b.txt", EvaluationDomain.Parse(["x=dir/a=b.txt"])[0].Paths[0]);

    [Theory]
    [InlineData("data/news", "write NAME=PATH")]
    [InlineData("=data/news", "write NAME=PATH")]
    [InlineData("news=", "write NAME=PATH")]
    [InlineData("news items=x.txt", "letters, digits")]
    public void Parse_Malformed_SaysHowToWriteIt(string argument, string expected)
    {
        var error = Assert.Throws<EvaluationException>(() => EvaluationDomain.Parse([argument]));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Nothing_AsksForData() =>
        Assert.Contains("--data NAME=PATH", Assert.Throws<EvaluationException>(() => EvaluationDomain.Parse([])).Message, StringComparison.Ordinal);
}
