using System.Text;
using System.Text.Json.Nodes;

namespace FlexOlmo.Packages.Tests;

/// <summary>The bytes a signature covers: sorted keys at every depth, no whitespace, the top-level signature left out.</summary>
public sealed class CanonicalJsonTests
{
    [Fact]
    public void Bytes_SortKeysAtEveryDepth_AndDropOnlyTheTopLevelSignature()
    {
        var document = JsonNode.Parse("""{"b": {"z": 1, "a": [ {"y": true, "x": null} ]}, "signature": {"value": "s"}, "a": "é\n"}""")!;

        var canonical = Encoding.UTF8.GetString(CanonicalJson.Bytes(document));

        Assert.Equal("{\"a\":\"\\u00E9\\n\",\"b\":{\"a\":[{\"x\":null,\"y\":true}],\"z\":1}}", canonical);
    }

    [Fact]
    public void Bytes_AreTheSame_ForTheSameContentWrittenDifferently_AndDiffer_ForAnyChange()
    {
        var compact = JsonNode.Parse("""{"name":"news","steps":10,"lr":0.0009}""")!;
        var pretty = JsonNode.Parse("{\n  \"lr\": 0.0009,\n  \"steps\": 10,\n  \"name\": \"news\"\n}")!;
        var changed = JsonNode.Parse("""{"name":"news","steps":11,"lr":0.0009}""")!;
        var nestedSignature = JsonNode.Parse("""{"name":"news","steps":10,"lr":0.0009,"inner":{"signature":1}}""")!;

        Assert.Equal(CanonicalJson.Bytes(compact), CanonicalJson.Bytes(pretty));
        Assert.NotEqual(CanonicalJson.Bytes(compact), CanonicalJson.Bytes(changed));
        Assert.Contains("signature", Encoding.UTF8.GetString(CanonicalJson.Bytes(nestedSignature)), StringComparison.Ordinal); // only the top-level one is left out
    }
}
