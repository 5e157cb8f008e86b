using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using FlexOlmo.Formats;

namespace FlexOlmo.Packages;

/// <summary>
/// A manifest or record as a typed value plus the exact JSON it was read from (which a signature covers).
/// Reading validates against the schema before anything is trusted; writing is atomic.
/// </summary>
public sealed class SignedDocument<T>
    where T : class
{
    public const long MaxBytes = 4L << 20;

    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private SignedDocument(T value, JsonObject json, string source)
    {
        Value = value;
        Json = json;
        Source = source;
    }

    public T Value { get; }

    /// <summary>The document as JSON (including its signature, when signed).</summary>
    public JsonObject Json { get; }

    public string Source { get; }

    /// <summary>The key fingerprint of the signer, or null.</summary>
    public string? SignedBy => ManifestSignature.SignedBy(Json);

    /// <summary>SHA-256 of the document's bytes as written (what a recipe pins).</summary>
    public string Sha256 => FileDigest.Of(System.Text.Encoding.UTF8.GetBytes(Serialize()));

    /// <summary>
    /// SHA-256 of the document's canonical form without its signature (<see cref="CanonicalJson"/>): what an owner
    /// signed and what a revocation names. Re-formatting the file or stripping the signature does not change it.
    /// </summary>
    public string ContentSha256 => ContentDigest(Json);

    public static string ContentDigest(JsonObject json) => FileDigest.Of(CanonicalJson.Bytes(json));

    public static SignedDocument<T> Create(T value, string schema, SigningKey? key)
    {
        var json = JsonSerializer.SerializeToNode(value, Options)!.AsObject();
        if (key is not null)
        {
            ManifestSignature.Sign(json, key);
        }

        SchemaValidator.Validate(schema, json, typeof(T).Name);
        return new SignedDocument<T>(value, json, typeof(T).Name);
    }

    public static SignedDocument<T> Load(string path, string schema) => Parse(ReadBounded(path), schema, path);

    public static SignedDocument<T> Parse(byte[] bytes, string schema, string source)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new PackageException($"{source}: not valid JSON ({e.Message}).");
        }

        SchemaValidator.Validate(schema, node, source);
        var value = node.Deserialize<T>(Options) ?? throw new PackageException($"{source}: empty document.");
        return new SignedDocument<T>(value, node!.AsObject(), source);
    }

    /// <summary>The exact text written to disk and uploaded (and hashed by <see cref="Sha256"/>).</summary>
    public string Serialize() => Json.ToJsonString(Options) + "\n";

    public void Save(string path) => AtomicFile.WriteAllText(path, Serialize());

    public static byte[] ReadBounded(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new PackageException($"{path}: not found.");
        }

        if (info.Length > MaxBytes)
        {
            throw new PackageException($"{path}: {info.Length} bytes is more than a manifest may have ({MaxBytes}).");
        }

        return File.ReadAllBytes(path);
    }
}
