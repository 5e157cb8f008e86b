using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
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
public sealed partial record Recipe(
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
    public YamlDocument Document { get; private init; } = null!;

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

        var recipe = document.Root.Deserialize<Recipe>(Options)! with { Document = document, Sha256 = FileDigest.Of(File.ReadAllBytes(path)) };
        recipe.CheckConsistency();
        return recipe;
    }

    /// <summary>Checks what the schema cannot: top-k within the experts, duplicate experts.</summary>
    private void CheckConsistency()
    {
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
    public long ShardBytes()
    {
        if (Output?.ShardSize is not { } size)
        {
            return 5_000_000_000;
        }

        if (size.ValueKind == JsonValueKind.Number)
        {
            return size.GetInt64();
        }

        var match = SizePattern().Match(size.GetString()!);
        var value = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var unit = match.Groups[2].Value switch
        {
            "" or "B" => 1.0,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024,
            "GiB" => 1024.0 * 1024 * 1024,
            _ => 1024.0 * 1024 * 1024 * 1024,
        };
        return Math.Max(1, (long)(value * unit));
    }

    /// <summary>Whether a source names a folder (relative to the recipe) rather than a registry reference.</summary>
    public bool IsFolder(string source) =>
        source.StartsWith('.') || source.StartsWith('/') || source.StartsWith('~') || source.Contains('/', StringComparison.Ordinal) || Directory.Exists(Resolve(source));

    public string Resolve(string source) => Path.GetFullPath(Path.Combine(Folder, FlexOlmo.Registry.RegistryConnection.ExpandHome(source)));

    private string Identity(string source) => IsFolder(source) ? Resolve(source) : source.Split('@')[0];

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")]
    private static partial Regex SizePattern();
}
