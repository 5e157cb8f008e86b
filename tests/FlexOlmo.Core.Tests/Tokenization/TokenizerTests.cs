using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Testing;

namespace FlexOlmo.Core.Tests.Tokenization;

public sealed class TokenizerTests
{
    private static readonly Lazy<HfJsonTokenizer> FromJson = new(() => HfJsonTokenizer.Load(Cl100kTokenizerJson.Path_));

    public static TheoryData<string, int[]> HfVectors => new()
    {
        { "This is a test", [2028, 374, 264, 1296] },
        { "Hi  Hello", [13347, 220, 22691] },
        { " ", [220] },
        { "  ", [256] },
        { " Hello", [22691] },
        { "生活的真谛是", [21990, 76706, 9554, 89151, 39013, 249, 21043] },
    };

    [Theory]
    [MemberData(nameof(HfVectors))]
    public void Dolma2_Encode_MatchesHuggingFaceTestVectors(string text, int[] expected)
    {
        var tokenizer = new Dolma2Tokenizer();
        Assert.Equal(expected, tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(expected));
    }

    [Theory]
    [MemberData(nameof(HfVectors))]
    public void TokenizerJson_Encode_MatchesHuggingFaceTestVectors(string text, int[] expected)
    {
        Assert.Equal(expected, FromJson.Value.Encode(text));
        Assert.Equal(text, FromJson.Value.Decode(expected));
    }

    [Fact]
    public void TokenizerJson_AgreesWithDolma2_OnMixedText()
    {
        var dolma2 = new Dolma2Tokenizer();
        var text = "Patients (n=42) received 5mg/kg twice daily.\n\nCafé naïve — 東京 🚀 <|endoftext|> done's it'll";
        Assert.Equal(dolma2.Encode(text), FromJson.Value.Encode(text));
        Assert.Contains(100257, FromJson.Value.Encode(text));
        Assert.Equal(text, FromJson.Value.Decode(FromJson.Value.Encode(text)));
    }

    [Fact]
    public void Dolma2_SpecialTokens_AreEosAndPad()
    {
        var tokenizer = new Dolma2Tokenizer();
        Assert.Equal([64, 100257, 65], tokenizer.Encode("a<|endoftext|>b"));
        Assert.Equal("<|pad|>", tokenizer.SpecialTokens[100277]);
        Assert.Equal("ab", tokenizer.Decode([64, 100257, 65], skipSpecialTokens: true));
        Assert.Equal(string.Empty, tokenizer.Decode([100300]));
    }

    [Fact]
    public void StreamingDetokenizer_NeverEmitsHalfACharacter_WhenTokensSplitUtf8()
    {
        var tokenizer = new Dolma2Tokenizer();
        var ids = tokenizer.Encode("生活的真谛是 ok");
        var streamer = new StreamingDetokenizer(tokenizer);
        var pieces = ids.Select(streamer.Add).ToList();
        pieces.Add(streamer.Flush());

        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        Assert.Equal("生活的真谛是 ok", string.Concat(pieces));
        Assert.Equal(string.Empty, pieces[4]); // 39013 is the first half of 谛: held back
        Assert.Equal("谛", pieces[5]);
    }

    [Fact]
    public void Loader_FallsBackToDolma2_ForDolma2Vocabulary_AndFailsClearlyOtherwise()
    {
        var dolma = ModelConfig.Load(TestPaths.Fixture("flexolmo-tiny")) with { VocabSize = 100352 };
        Assert.IsType<Dolma2Tokenizer>(TokenizerLoader.TryLoad(TestPaths.Fixture("flexolmo-tiny"), dolma));
        var tiny = ModelConfig.Load(TestPaths.Fixture("flexolmo-tiny"));
        var error = Assert.Throws<TokenizerException>(() => TokenizerLoader.Load(TestPaths.Fixture("flexolmo-tiny"), tiny));
        Assert.Contains("give token ids", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":{"type":"Unigram","vocab":[]}}""", "model.type")]
    [InlineData("""{"model":{"type":"BPE","vocab":{"a":1},"merges":[]}}""", "pre_tokenizer")]
    [InlineData("""{"model":{"type":"BPE","vocab":{"a":-1}},"pre_tokenizer":{"type":"ByteLevel"}}""", "non-negative")]
    [InlineData("""{"model":{"type":"BPE","vocab":{"a":1}},"pre_tokenizer":{"type":"Whitespace"}}""", "Whitespace")]
    [InlineData("{", "not valid JSON")]
    public void TokenizerJson_Load_NamesTheProblem_WhenUnsupported(string json, string expected)
    {
        using var temp = new TempDirectory("tok");
        var path = temp.File("tokenizer.json");
        File.WriteAllText(path, json);
        var error = Assert.Throws<TokenizerException>(() => HfJsonTokenizer.Load(path));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }
}
