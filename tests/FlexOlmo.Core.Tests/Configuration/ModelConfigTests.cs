using System.Text.Json.Nodes;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Testing;

namespace FlexOlmo.Core.Tests.Configuration;

public sealed class ModelConfigTests
{
    [Fact]
    public void Load_ReadsTransformersV5Spelling_FromFixture()
    {
        var config = ModelConfig.Load(TestPaths.Fixture("flexolmo-tiny"));
        Assert.Equal(ModelConfig.FlexOlmo, config.ModelType);
        Assert.Equal(500000.0, config.RopeTheta);
        Assert.Equal(4, config.NumExperts);
        Assert.Equal(2, config.NumExpertsPerTok);
        Assert.False(config.NormTopkProb);
        Assert.Equal(16, config.HeadDim);
        Assert.Equal("float32", config.StorageDType);
        Assert.Equal([2], config.EosTokenIds);
    }

    [Fact]
    public void FromJson_ReadsTransformersV4Spelling()
    {
        var json = JsonNode.Parse("""
            {"model_type":"flex_olmo","vocab_size":100352,"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":32,
             "num_attention_heads":32,"rope_theta":500000,"torch_dtype":"bfloat16","num_local_experts":7,"num_experts_per_tok":5,
             "eos_token_id":[100257,100265],"pad_token_id":100277}
            """)!.AsObject();
        var config = ModelConfig.FromJson(json, "v4.json");
        Assert.Equal(500000.0, config.RopeTheta);
        Assert.Equal("bfloat16", config.StorageDType);
        Assert.Equal(7, config.NumExperts);
        Assert.Equal(32, config.NumKeyValueHeads);
        Assert.Equal(128, config.HeadDim);
        Assert.Equal([100257, 100265], config.EosTokenIds);
        Assert.Equal(1e-6, config.RmsNormEps);
    }

    [Theory]
    [InlineData("""{"model_type":"llama"}""", "'model_type'")]
    [InlineData("""{"model_type":"olmo2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_attention_heads":2}""", "'num_hidden_layers' is missing")]
    [InlineData("""{"model_type":"olmo2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2}""", "'num_key_value_heads'")]
    [InlineData("""{"model_type":"olmo2","vocab_size":"ten","hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2}""", "'vocab_size' must be an integer")]
    [InlineData("""{"model_type":"flex_olmo","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"num_experts":2,"num_experts_per_tok":3}""", "'num_experts_per_tok' (3) exceeds")]
    [InlineData("""{"model_type":"olmo2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"eos_token_id":99}""", "'eos_token_id' (99)")]
    [InlineData("""{"model_type":"olmo2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"rope_parameters":{"rope_type":"yarn","rope_theta":1}}""", "rope_type")]
    public void FromJson_NamesTheBadField_WhenInvalid(string text, string expected)
    {
        var error = Assert.Throws<ConfigException>(() => ModelConfig.FromJson(JsonNode.Parse(text)!.AsObject(), "bad/config.json"));
        Assert.Contains("bad/config.json", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToJson_KeepsUnknownFieldsAndWritesV5Spelling()
    {
        var json = JsonNode.Parse("""{"model_type":"olmo2","vocab_size":10,"hidden_size":8,"intermediate_size":8,"num_hidden_layers":1,"num_attention_heads":2,"rope_theta":1000,"torch_dtype":"float32","custom":"kept"}""")!.AsObject();
        var written = ModelConfig.FromJson(json, "c.json").ToJson();
        Assert.Equal("kept", written["custom"]!.GetValue<string>());
        Assert.Equal(1000.0, written["rope_parameters"]!["rope_theta"]!.GetValue<double>());
        Assert.Null(written["rope_theta"]);
        Assert.Equal("float32", written["dtype"]!.GetValue<string>());
        Assert.Equal(1000.0, ModelConfig.FromJson(written, "again").RopeTheta);
    }

    [Theory]
    [InlineData("olmo2", 10000.0, 2048)]
    [InlineData("flex_olmo", 500000.0, 4096)]
    public void FromJson_FillsMissingFieldsWithHuggingFacesDefaultsOfEachModelType(string modelType, double ropeTheta, int maxPositions)
    {
        var json = new JsonObject
        {
            ["model_type"] = modelType,
            ["vocab_size"] = 512,
            ["hidden_size"] = 64,
            ["intermediate_size"] = 128,
            ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = 4,
        };
        if (modelType == ModelConfig.FlexOlmo)
        {
            json["num_experts"] = 2;
            json["num_experts_per_tok"] = 1;
        }

        var config = ModelConfig.FromJson(json, "defaults.json");

        Assert.Equal(ropeTheta, config.RopeTheta);
        Assert.Equal(maxPositions, config.MaxPositionEmbeddings);
    }

    [Theory]
    [InlineData("hidden_size", 1_000_000_000L, "at most")]
    [InlineData("vocab_size", 2_000_000_000L, "at most")]
    [InlineData("num_hidden_layers", 0L, "positive")]
    public void FromJson_RefusesSizesNoModelHas_BeforeAnythingIsAllocated(string field, long value, string expected)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixture("olmo2-tiny"), ModelConfig.FileName)))!.AsObject();
        json[field] = value;

        var error = Assert.Throws<ConfigException>(() => ModelConfig.FromJson(json, "hostile.json"));

        Assert.Contains(field, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromJson_WithFieldsOfTheWrongJsonType_NamesTheField()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.Fixture("olmo2-tiny"), ModelConfig.FileName)))!.AsObject();
        json["rope_parameters"] = new JsonObject { ["rope_type"] = 5, ["rope_theta"] = "x" };

        var error = Assert.Throws<ConfigException>(() => ModelConfig.FromJson(json, "hostile.json"));

        Assert.Contains("rope_type", error.Message, StringComparison.Ordinal);
    }
}
