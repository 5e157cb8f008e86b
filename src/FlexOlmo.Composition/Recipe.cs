using System.Text.Json;
using System.Text.Json.Serialization;
using FlexOlmo.Packages;

namespace FlexOlmo.Composition;

/// <summary>A recipe's anchor: a folder or a registry reference, with an optional fingerprint pin.</summary>
public sealed record RecipeAnchor(string Source, string? Fingerprint);

/// <summary>One opted-in expert: a registry reference or a folder, with an optional pin of its manifest's SHA-256.</summary>
public sealed record RecipeExpert(string Source, string? Sha256);

/// <summary>Where and how the composed checkpoint is written.</summary>
public sealed record RecipeOutput(string? Path, JsonElement? ShardSize);

/// <summary>
/// A composition recipe (see schemas/recipe.schema.json and recipes/): the anchor, the experts whose owners opted in,
/// the top-k, trusted keys, dtype and output. Loaded from YAML with every error located at its file, line and field.
/// </summary>
public sealed record Recipe(
    string Name,
    RecipeAnchor Anchor,
    IReadOnlyList<RecipeExpert> Experts,
    string? Registry = null,
    int? ExpertsPerToken = null,
    IReadOnlyList<string>? TrustedKeys = null,
    string? Dtype = null,
    RecipeOutput? Output = null,
    string? Description = null)
{
    private static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, NumberHandling = JsonNumberHandling.Strict };

    /// <summary>The file it was read from (relative sources resolve against its folder).</summary>
    [JsonIgnore]
    internal YamlDocument Document { get; private init; } = null!;

    /// <summary>SHA-256 of the recipe file's bytes (recorded in the composed model's sidecar).</summary>
    [JsonIgnore]
    public string Sha256 { get; private init; } = string.Empty;

    [JsonIgnore]
    public string Folder => Path.GetDirectoryName(Path.GetFullPath(Document.Path))!;

    public static Recipe Load(string path)
    {
        var document = YamlDocument.Load(path);
        var problems = SchemaValidator.ProblemsAt(SchemaValidator.Recipe, document.Root);
        if (problems.Count > 0)
        {
            var (pointer, message) = problems[0];
            if (message.StartsWith("unknown field", StringComparison.Ordinal))
            {
                message = "is not a recipe field (check its spelling; see schemas/recipe.schema.json)";
            }

            throw document.Error(pointer, message + (problems.Count > 1 ? $" (and {problems.Count - 1} more problem(s))" : string.Empty));
        }

        Recipe recipe;
        try
        {
            recipe = document.Root.Deserialize<Recipe>(Options)! with { Document = document, Sha256 = FileDigest.Of(File.ReadAllBytes(path)) };
        }
        catch (JsonException e)
        {
            // The schema admits every value of the right type; what is left is a number too large for its field.
            var pointer = "/" + (e.Path ?? "$").TrimStart('$', '.').Replace('.', '/').Replace("[", "/", StringComparison.Ordinal).Replace("]", string.Empty, StringComparison.Ordinal);
            throw document.Error(pointer, "is out of range for this field.");
        }

        recipe.CheckConsistency();
        return recipe;
    }

    /// <summary>Checks what the schema cannot: top-k within the experts, duplicate experts, the shard size.</summary>
    private void CheckConsistency()
    {
        if (TrustedKeys is { Count: 0 })
        {
            // An empty list must not quietly mean "trust everything".
            throw Document.Error("/trusted_keys", "is empty: list the owners' public keys (.pub) to require their signatures, or remove the field to compose without verification (every expert is then reported as unverified).");
        }

        if (!ShardSize.InRange(ShardBytes()))
        {
            throw Document.Error("/output/shard_size", $"must be between 1KB and 1TB (got {Output!.ShardSize}).");
        }

        var experts = Experts.Count + 1;
        if (ExpertsPerToken is { } k && k > experts)
        {
            throw Document.Error("/experts_per_token", $"{k} is larger than the number of experts ({Experts.Count} opted in + the public one = {experts}).");
        }

        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Experts.Count; i++)
        {
            var key = Identity(Experts[i].Source);
            if (seen.TryGetValue(key, out var first))
            {
                throw Document.Error($"/experts/{i}/source", $"'{Experts[i].Source}' is listed twice (also experts[{first}]); each expert may appear once.");
            }

            seen[key] = i;
        }
    }

    /// <summary>The largest shard in bytes (default 5 GB).</summary>
    public long ShardBytes() => Output?.ShardSize switch
    {
        null => ShardSize.Default,
        { ValueKind: JsonValueKind.Number } size => size.TryGetInt64(out var exact) ? exact : long.MaxValue,
        { } size => ShardSize.TryParse(size.GetString()!) ?? long.MaxValue, // the schema admits only sizes
    };

    /// <summary>Whether a source names a folder (relative to the recipe) rather than a registry reference.</summary>
    public bool IsFolder(string source) =>
        source.StartsWith('.') || source.StartsWith('/') || source.StartsWith('~') || source.Contains('/', StringComparison.Ordinal) || Directory.Exists(Resolve(source));

    public string Resolve(string source) => Path.GetFullPath(Path.Combine(Folder, FlexOlmo.Registry.RegistryConnection.ExpandHome(source)));

    private string Identity(string source) => IsFolder(source) ? Resolve(source) : source.Split('@')[0];
}
