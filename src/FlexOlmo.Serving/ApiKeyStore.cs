using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats;

namespace FlexOlmo.Serving;

/// <summary>An API key's holder and the experts whose owners consented to that holder.</summary>
public sealed record ApiKey(string Name, ExpertSet Allowed);

/// <summary>
/// The --api-keys file: each key lists the experts it may use (data owners' consent); a request for another is 403.
/// Keys may be stored as plain text or as SHA-256 ("key_sha256"); comparison is constant-time.
/// <code>{"keys": [{"name": "clinic-app", "key": "sk-...", "experts": ["public", "clinic"]}, {"name": "ops", "key_sha256": "sha256:...", "experts": "*"}]}</code>
/// </summary>
public sealed class ApiKeyStore
{
    private readonly List<(byte[] Hash, ApiKey Key)> _keys;

    private ApiKeyStore(List<(byte[], ApiKey)> keys) => _keys = keys;

    public int Count => _keys.Count;

    public static ApiKeyStore Load(string path, ModelHost host)
    {
        if (!File.Exists(path) || new FileInfo(path).Length > (1 << 20))
        {
            throw new FlexOlmoException($"{path}: no such API keys file (or larger than 1 MiB).");
        }

        var keys = new List<(byte[], ApiKey)>();
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var list = document.RootElement.GetProperty("keys");
            var index = 0;
            foreach (var entry in list.EnumerateArray())
            {
                var where = $"{path}: keys[{index++}]";
                var name = entry.TryGetProperty("name", out var n) ? n.GetString() ?? where : where;
                byte[] hash;
                if (entry.TryGetProperty("key", out var plain) && plain.GetString() is { Length: >= 8 } text)
                {
                    hash = SHA256.HashData(Encoding.UTF8.GetBytes(text));
                }
                else if (entry.TryGetProperty("key_sha256", out var digest) && digest.GetString() is { } d && d.StartsWith("sha256:", StringComparison.Ordinal) && d.Length == 71)
                {
                    hash = Convert.FromHexString(d[7..]);
                }
                else
                {
                    throw new FlexOlmoException($"{where}: needs \"key\" (at least 8 characters) or \"key_sha256\" (sha256:<64 hex>).");
                }

                var allowed = entry.TryGetProperty("experts", out var experts) && experts.ValueKind == JsonValueKind.Array
                    ? ExpertSet.Include(Math.Max(1, host.NumExperts), experts.EnumerateArray().Select(e => Resolve(host, e, where)).Append(0))
                    : host.AllExperts;
                keys.Add((hash, new ApiKey(name, allowed)));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FlexOlmoException($"{path}: expected {{\"keys\": [{{\"name\": ..., \"key\": ..., \"experts\": [...] or \"*\"}}]}} ({e.Message}).");
        }

        return new ApiKeyStore(keys);
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

    private static int Resolve(ModelHost host, JsonElement element, string where)
    {
        var reference = element.ValueKind == JsonValueKind.Number ? element.GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture) : element.GetString() ?? string.Empty;
        try
        {
            return ExpertSet.ResolveOne(reference, Math.Max(1, host.NumExperts), host.Experts.Select(e => e.Name).ToList());
        }
        catch (ExpertMaskException e)
        {
            throw new FlexOlmoException($"{where}: {e.Message}");
        }
    }
}
