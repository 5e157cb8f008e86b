using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace FlexOlmo.Packages;

/// <summary>
/// Validates JSON documents against the schemas in the repository's schemas/ folder (embedded in this assembly),
/// turning JSON Schema results into messages that name the file and the field.
/// </summary>
public static class SchemaValidator
{
    public const string ExpertManifest = "expert-manifest.schema.json";
    public const string AnchorManifest = "anchor-manifest.schema.json";
    public const string Revocation = "revocation.schema.json";
    public const string Recipe = "recipe.schema.json";

    private static readonly Lazy<IReadOnlyDictionary<string, JsonSchema>> Schemas = new(LoadAll);
    private static readonly ConcurrentDictionary<string, string> Texts = new();

    /// <summary>The text of an embedded schema (for tools and tests).</summary>
    public static string Text(string name) => Texts.GetOrAdd(name, n =>
    {
        using var stream = typeof(SchemaValidator).Assembly.GetManifestResourceStream("schemas/" + n)
            ?? throw new InvalidOperationException($"schema {n} is not embedded");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>Problems found, one line each ("field: problem"); empty when valid.</summary>
    public static IReadOnlyList<string> Problems(string schemaName, JsonNode? document) =>
        ProblemsAt(schemaName, document).Select(p => p.Message.StartsWith("unknown field", StringComparison.Ordinal) ? p.Message : $"{(p.Pointer.Length == 0 ? "(document)" : p.Pointer.TrimStart('/').Replace('/', '.'))}: {p.Message}").ToList();

    /// <summary>Problems found with the JSON pointer of the offending value (for callers that map it to a file position).</summary>
    public static IReadOnlyList<(string Pointer, string Message)> ProblemsAt(string schemaName, JsonNode? document)
    {
        var schema = Schemas.Value[schemaName];
        using var parsed = JsonDocument.Parse(document?.ToJsonString() ?? "null");
        var results = schema.Evaluate(parsed.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        if (results.IsValid)
        {
            return [];
        }


        var problems = new List<(string, string)>();
        var details = results.Details ?? [];
        var failed = details.Where(d => !d.IsValid && !InsideNot(d.EvaluationPath.ToString())).Select(d => d.EvaluationPath.ToString()).ToList();
        foreach (var detail in details)
        {
            var path = detail.EvaluationPath.ToString();
            // Failures inside "not" are what make "not" pass: they are not problems of the document.
            if (detail.IsValid || InsideNot(path))
            {
                continue;
            }

            var pointer = detail.InstanceLocation.ToString();
            var field = pointer.TrimStart('/').Replace('/', '.');
            if (detail.Errors is null)
            {
                // A node that failed without a message and without failing children: a "not" matched (for example ".."
                // or a control character in a name).
                if (!failed.Any(other => other.StartsWith(path + "/", StringComparison.Ordinal)))
                {
                    problems.Add((pointer, "has a form the schema forbids (such as '..' or a control character)"));
                }

                continue;
            }

            foreach (var (keyword, message) in detail.Errors)
            {
                problems.Add(keyword switch
                {
                    "additionalProperties" or "" when path.EndsWith("additionalProperties", StringComparison.Ordinal)
                        => (pointer, $"unknown field '{field}'"),
                    _ => (pointer, message),
                });
            }
        }

        return problems.Distinct().ToList();
    }

    /// <summary>Throws naming <paramref name="source"/> and every problem when the document is invalid.</summary>
    public static void Validate(string schemaName, JsonNode? document, string source)
    {
        var problems = Problems(schemaName, document);
        if (problems.Count > 0)
        {
            throw new PackageException($"{source}: does not follow {schemaName}: {string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? $"; ... ({problems.Count - 8} more)" : string.Empty)}.");
        }
    }

    private static bool InsideNot(string evaluationPath) =>
        evaluationPath.Contains("/not/", StringComparison.Ordinal) || evaluationPath.EndsWith("/not", StringComparison.Ordinal);

    private static IReadOnlyDictionary<string, JsonSchema> LoadAll()
    {
        var registry = new SchemaRegistry();
        var all = new Dictionary<string, JsonSchema>();
        foreach (var resource in typeof(SchemaValidator).Assembly.GetManifestResourceNames().Where(r => r.StartsWith("schemas/", StringComparison.Ordinal)))
        {
            var name = resource["schemas/".Length..];
            var schema = JsonSchema.FromText(Text(name), new BuildOptions { SchemaRegistry = registry });
            all[name] = schema;
        }

        return all;
    }
}
