using System.Text.Json.Nodes;

namespace FlexOlmo.Packages.Tests;

/// <summary>The JSON schemas refuse what the code refuses, and say which field is wrong.</summary>
public sealed class SchemaTests
{
    [Theory]
    [InlineData("name", "a..b")]
    [InlineData("name", "news\n")]
    [InlineData("name", "News")]
    [InlineData("version", "1.0\u0007")]
    [InlineData("owner", "me\nyou")]
    [InlineData("license", "\u001b[31mMIT")]
    [InlineData("description", "knows\u0000things")]
    public void ExpertManifest_RefusesForbiddenValues_NamingTheField(string field, string value)
    {
        var manifest = Valid();
        manifest[field] = value;

        var problems = SchemaValidator.Problems(SchemaValidator.ExpertManifest, manifest);

        Assert.Contains(problems, p => p.StartsWith(field + ":", StringComparison.Ordinal));
        Assert.Empty(SchemaValidator.Problems(SchemaValidator.ExpertManifest, Valid()));
    }

    [Fact]
    public void ExpertManifest_AcceptsLineBreaksAndTabsInADescription()
    {
        var manifest = Valid();
        manifest["description"] = "knows about news.\n\tAnd weather.";

        Assert.Empty(SchemaValidator.Problems(SchemaValidator.ExpertManifest, manifest));
    }

    [Fact]
    public void UnknownFieldsAndWrongTypes_AreNamed()
    {
        var manifest = Valid();
        manifest["ownr"] = "typo";
        manifest["training"]!["steps"] = "ten";

        var problems = SchemaValidator.Problems(SchemaValidator.ExpertManifest, manifest);

        Assert.Contains("unknown field 'ownr'", problems);
        Assert.Contains(problems, p => p.StartsWith("training.steps:", StringComparison.Ordinal));
    }

    [Fact]
    public void Revocation_NeedsADigestOfWhatItRevokes()
    {
        var record = new JsonObject { ["format"] = "flexolmo-revocation/1", ["name"] = "news", ["version"] = "1.0.0", ["reason"] = "r", ["revoked_at"] = "2026-01-01T00:00:00Z" };

        var without = SchemaValidator.Problems(SchemaValidator.Revocation, record);
        record["content_sha256"] = "sha256:" + new string('a', 64);

        Assert.NotEmpty(without);
        Assert.Empty(SchemaValidator.Problems(SchemaValidator.Revocation, record));
    }

    [Fact]
    public void Naming_RefusesControlCharacters_AndShowsThemPrintably()
    {
        var error = Assert.Throws<PackageException>(() => Naming.CheckName("news\n"));

        Assert.Contains("news\\u000a", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        Assert.Throws<PackageException>(() => Naming.CheckText("me\u0007", "--owner", 200));
        Assert.Equal("me", Naming.CheckText("me", "--owner", 200));
    }

    private static JsonObject Valid() => new()
    {
        ["format"] = "flexolmo-expert/1",
        ["name"] = "news",
        ["version"] = "1.0.0",
        ["owner"] = "news owner",
        ["license"] = "Apache-2.0",
        ["anchor"] = new JsonObject { ["fingerprint"] = "sha256:" + new string('1', 64) },
        ["architecture"] = new JsonObject { ["model_type"] = "olmo2", ["hidden_size"] = 64, ["intermediate_size"] = 128, ["num_hidden_layers"] = 2, ["vocab_size"] = 512 },
        ["router_embedding"] = new JsonObject { ["method"] = "anchor-mean-hidden", ["width"] = 64 },
        ["training"] = new JsonObject { ["steps"] = 10, ["tokens"] = 100, ["seq_len"] = 32, ["batch_tokens"] = 256, ["lr"] = 0.0009, ["warmup"] = 1, ["seed"] = 0, ["dtype"] = "float32" },
        ["files"] = new JsonArray(new JsonObject { ["path"] = "expert.safetensors", ["sha256"] = "sha256:" + new string('0', 64), ["size"] = 10 }),
        ["created"] = "2026-01-01T00:00:00Z",
        ["tool"] = new JsonObject { ["name"] = "flexolmo.net", ["version"] = "0.1.0" },
    };
}
