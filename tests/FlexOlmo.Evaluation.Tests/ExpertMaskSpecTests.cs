namespace FlexOlmo.Evaluation.Tests;

public sealed class ExpertMaskSpecTests
{
    private static readonly string[] Names = ["public", "news", "science", "fiction"];

    [Theory]
    [InlineData("composed", "composed", new[] { 0, 1, 2, 3 })]
    [InlineData("all", "composed", new[] { 0, 1, 2, 3 })]
    [InlineData("anchor", "anchor", new[] { 0 })]
    [InlineData("public", "anchor", new[] { 0 })]
    [InlineData("only:news", "only:news", new[] { 0, 1 })]
    [InlineData("only:2", "only:science", new[] { 0, 2 })]
    [InlineData("only:news+fiction", "only:news+fiction", new[] { 0, 1, 3 })]
    [InlineData("without:science", "without:science", new[] { 0, 1, 3 })]
    [InlineData("public+fiction", "public+fiction", new[] { 0, 3 })]
    [InlineData("news,public", "public+news", new[] { 0, 1 })]
    [InlineData("0+1+2+3", "composed", new[] { 0, 1, 2, 3 })]
    public void Parse_KnownForms_GiveLabelAndExperts(string spec, string label, int[] allowed)
    {
        var mask = ExpertMaskSpec.Parse(spec, Names);

        Assert.Equal(label, mask.Label);
        Assert.Equal(allowed, mask.Experts.Allowed);
    }

    [Theory]
    [InlineData("only:sports", "Unknown expert 'sports'")]
    [InlineData("without:public", "cannot be left out")]
    [InlineData("maybe:news", "unknown form")]
    [InlineData("only:", "names no expert")]
    [InlineData("all,anchor,only:news", "separate masks with spaces")]
    [InlineData("only:7", "Unknown expert 7")]
    public void Parse_BadSpec_NamesTheSpecAndTheFix(string spec, string expected)
    {
        var error = Assert.Throws<EvaluationException>(() => ExpertMaskSpec.Parse(spec, Names));

        Assert.Contains($"mask '{spec}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_ComposedModel_ListEveryOwnerOnlyAndWithout()
    {
        var labels = ExpertMaskSpec.Defaults(Names).Select(m => m.Label);

        Assert.Equal(["composed", "anchor", "only:news", "only:science", "only:fiction", "without:news", "without:science", "without:fiction"], labels);
    }

    [Fact]
    public void Defaults_DenseModel_IsTheAnchorAlone()
    {
        var mask = Assert.Single(ExpertMaskSpec.Defaults(["public"]));

        Assert.Equal("anchor", mask.Label);
        Assert.Equal("anchor", ExpertMaskSpec.Parse("all", ["public"]).Label);
    }

    [Fact]
    public void Defaults_TwoExperts_SkipOnlyAndWithoutThatRepeatComposedAndAnchor() =>
        Assert.Equal(["composed", "anchor"], ExpertMaskSpec.Defaults(["public", "news"]).Select(m => m.Label));
}
