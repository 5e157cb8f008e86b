using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats;

namespace FlexOlmo.Serving;

/// <summary>An API key's holder and the experts whose owners consented to that holder.</summary>
internal sealed record ApiKey(string Name, ExpertSet Allowed);

/// <summary>
/// The --api-keys file: each key lists the experts it may use (data owners' consent); a request for another is 403.
/// Consent is never assumed: "experts" must be an explicit grant, either a non-empty array of expert names or indices
/// (the public expert is always included) or the string "*" (every expert). A missing field, null, an empty array or
/// string, a single name given as a string, or any other value is an error when the file loads, naming the entry.
/// Keys may be stored as plain text or as SHA-256 ("key_sha256"); comparison is constant-time.
/// <code>{"keys": [{"name": "clinic-app", "key": "sk-...", "experts": ["public", "clinic"]}, {"name": "ops", "key_sha256": "sha256:...", "experts": "*"}]}</code>
/// </summary>
internal sealed class ApiKeyStore
{
    private const long MaxFileBytes = 1 << 20;
    private static readonly HashSet<string> EntryFields = ["name", "key", "key_sha256", "experts"];
    private readonly List<(byte[] Hash, ApiKey Key)> _keys;

    private ApiKeyStore(List<(byte[], ApiKey)> keys) => _keys = keys;

    public int Count => _keys.Count;

    /// <summary>The keys file checked against a loaded model's experts.</summary>
    public static ApiKeyStore Load(string path, ModelHost host) => Load(path, host.NumExperts, host.Experts.Select(e => e.Name).ToList());

    /// <summary>
    /// The keys file checked against a model's experts, <paramref name="numExperts"/> (0: dense) named
    /// <paramref name="names"/> in router order: what the model folder says before any weight loads, so that a bad file is
    /// refused before minutes of loading.
    /// </summary>
    public static ApiKeyStore Load(string path, int numExperts, IReadOnlyList<string> names)
    {
        var model = new ExpertNaming(numExperts, names);
        if (!File.Exists(path))
        {
            throw new FlexOlmoException($"{path}: no such API keys file.");
        }

        if (new FileInfo(path).Length > MaxFileBytes)
        {
            throw new FlexOlmoException($"{path}: larger than 1 MiB; not an API keys file.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = 8 });
        }
        catch (JsonException e)
        {
            throw new FlexOlmoException($"{path}: not valid JSON ({e.Message}). Expected {{\"keys\": [{{\"name\": ..., \"key\": ..., \"experts\": [...] or \"*\"}}]}}.");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("keys", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw new FlexOlmoException($"{path}: expected {{\"keys\": [{{\"name\": ..., \"key\": ..., \"experts\": [...] or \"*\"}}]}}.");
            }

            var keys = new List<(byte[], ApiKey)>();
            var index = 0;
            foreach (var entry in list.EnumerateArray())
            {
                var where = $"{path}: keys[{index++}]";
                if (entry.ValueKind != JsonValueKind.Object)
                {
                    throw new FlexOlmoException($"{where}: must be an object with \"name\", \"key\" or \"key_sha256\", and \"experts\".");
                }

                foreach (var field in entry.EnumerateObject())
                {
                    if (!EntryFields.Contains(field.Name))
                    {
                        throw new FlexOlmoException($"{where}: unknown field '{field.Name}' (an entry has name, key or key_sha256, and experts).");
                    }
                }

                var name = entry.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() is { Length: > 0 } text ? text : where;
                where = name == where ? where : $"{where} ('{name}')";
                var hash = KeyHash(entry, where);
                if (keys.Any(k => CryptographicOperations.FixedTimeEquals(k.Item1, hash)))
                {
                    throw new FlexOlmoException($"{where}: the same key appears twice; each key may have one grant.");
                }

                keys.Add((hash, new ApiKey(name, Grant(entry, model, where))));
            }

            return new ApiKeyStore(keys);
        }
    }

    /// <summary>The key presented in "Authorization: Bearer KEY", or a 401.</summary>
    public ApiKey Authenticate(string? authorization)
    {
        if (authorization is null || !authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiException(401, "Missing API key: send 'Authorization: Bearer YOUR_KEY'.", null, "missing_api_key");
        }

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[7..].Trim()));
        foreach (var (expected, key) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, expected))
            {
                return key;
            }
        }

        throw new ApiException(401, "Invalid API key.", null, "invalid_api_key");
    }

    private static byte[] KeyHash(JsonElement entry, string where)
    {
        var hasPlain = entry.TryGetProperty("key", out var plain);
        var hasDigest = entry.TryGetProperty("key_sha256", out var digest);
        if (hasPlain == hasDigest)
        {
            throw new FlexOlmoException($"{where}: needs exactly one of \"key\" (at least 8 characters) or \"key_sha256\" (sha256:<64 hex>).");
        }

        if (hasPlain)
        {
            return plain.ValueKind == JsonValueKind.String && plain.GetString() is { Length: >= 8 } text
                ? SHA256.HashData(Encoding.UTF8.GetBytes(text))
                : throw new FlexOlmoException($"{where}: \"key\" must be a string of at least 8 characters.");
        }

        if (digest.ValueKind == JsonValueKind.String && digest.GetString() is { Length: 71 } d && d.StartsWith("sha256:", StringComparison.Ordinal) && d[7..].All(char.IsAsciiHexDigit))
        {
            return Convert.FromHexString(d[7..]);
        }

        throw new FlexOlmoException($"{where}: \"key_sha256\" must be sha256:<64 hex digits>.");
    }

    /// <summary>The experts an entry grants: only an explicit, non-empty list or "*".</summary>
    private static ExpertSet Grant(JsonElement entry, ExpertNaming model, string where)
    {
        const string Fix = "list the experts this key may use, e.g. \"experts\": [\"public\", \"clinic\"], or \"experts\": \"*\" for every expert";
        if (!entry.TryGetProperty("experts", out var experts))
        {
            throw new FlexOlmoException($"{where}: has no \"experts\"; consent is never assumed: {Fix}.");
        }

        switch (experts.ValueKind)
        {
            case JsonValueKind.String when experts.GetString() == "*":
                return ExpertSet.All(Math.Max(1, model.NumExperts));
            case JsonValueKind.Array when experts.GetArrayLength() > 0:
                var granted = experts.EnumerateArray().Select((e, i) => Resolve(model, e, $"{where}.experts[{i}]")).Append(0).ToList();
                return ExpertSet.Include(Math.Max(1, model.NumExperts), granted);
            case JsonValueKind.Array:
                throw new FlexOlmoException($"{where}: \"experts\" is empty: {Fix} (\"public\" alone grants only the public expert).");
            case JsonValueKind.String:
                throw new FlexOlmoException($"{where}: \"experts\" is the string \"{experts.GetString()}\"; only \"*\" may be a string: {Fix}.");
            default:
                throw new FlexOlmoException($"{where}: \"experts\" is {experts.ValueKind.ToString().ToLowerInvariant()}, not a grant: {Fix}.");
        }
    }

    private static int Resolve(ExpertNaming model, JsonElement element, string where)
    {
        string reference;
        if (element.ValueKind == JsonValueKind.Number && element.TryGetInt32(out var number))
        {
            reference = number.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else if (element.ValueKind == JsonValueKind.String && element.GetString() is { Length: > 0 } text)
        {
            reference = text;
        }
        else
        {
            throw new FlexOlmoException($"{where}: must be an expert name or index, not {element.GetRawText()}.");
        }

        try
        {
            return ExpertSet.ResolveOne(reference, Math.Max(1, model.NumExperts), model.Names);
        }
        catch (ExpertMaskException e)
        {
            throw new FlexOlmoException($"{where}: {e.Message}");
        }
    }

    /// <summary>A model's experts as the keys file names them: how many (0: dense), and their names in router order.</summary>
    private sealed record ExpertNaming(int NumExperts, IReadOnlyList<string> Names);
}
