namespace FlexOlmo.Composition.Tests;

public sealed class ShardSizeTests
{
    [Theory]
    [InlineData("5GB", 5_000_000_000L)]
    [InlineData("500MB", 500_000_000L)]
    [InlineData("2GiB", 2L << 30)]
    [InlineData("1.5 KB", 1500L)]
    [InlineData("123456", 123456L)]
    public void Parse_HuggingFaceSpellings_GiveBytes(string text, long bytes) => Assert.Equal(bytes, ShardSize.Parse(text, "--shard-size"));

    [Theory]
    [InlineData("0")]
    [InlineData("999")]
    [InlineData("2TB")]
    [InlineData("5XB")]
    [InlineData("-1")]
    [InlineData("1e3")]
    public void Parse_OutOfRangeOrNotASize_NamesTheOptionAndTheSpellings(string text)
    {
        var error = Assert.ThrowsAny<FlexOlmo.Formats.FlexOlmoException>(() => ShardSize.Parse(text, "--shard-size"));

        Assert.StartsWith($"--shard-size {text}:", error.Message, StringComparison.Ordinal);
        Assert.Contains("5GB", error.Message, StringComparison.Ordinal);
    }
}
