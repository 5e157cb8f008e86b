using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using FlexOlmo.Formats;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry;

/// <summary>
/// The revocations this machine has seen (<c>$FLEXOLMO_HOME/revocations-seen/NAME/VERSION/*.json</c>). Once a
/// revocation was seen in any registry, pull, compose and list keep refusing the expert, even when the record later
/// disappears from the registry (deleted, or the registry rolled back). An entry matches an expert with the same
/// content digest, or with the same name, version and owner key. A damaged entry counts as a revocation (fail closed).
/// </summary>
public sealed class RevocationLedger(string folder)
{
    private const long MaxEntryBytes = 64 * 1024;
    private const int MaxEntriesPerVersion = 4096;
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public static RevocationLedger Default => new(Path.Combine(FlexOlmoHome.Path, "revocations-seen"));

    public string Folder { get; } = folder;

    /// <summary>Records a verified revocation (idempotent).</summary>
    public void Remember(ExpertIdentity expert, RevocationFinding finding)
    {
        var entry = new Entry(expert.Name, expert.Version, expert.ContentSha256, expert.Owner, finding.Basis, finding.Reason, finding.RevokedAt, finding.RevokedBy, finding.Source, DateTimeOffset.UtcNow);
        var key = FileDigest.Hex(FileDigest.Of(Encoding.UTF8.GetBytes($"{expert.ContentSha256}|{expert.Owner}|{finding.Source}")))[..32];
        var path = Path.Combine(VersionFolder(expert), key + ".json");
        if (!File.Exists(path))
        {
            AtomicFile.WriteAllText(path, JsonSerializer.Serialize(entry, Options) + "\n");
        }
    }

    /// <summary>The remembered revocation of <paramref name="expert"/>, or null.</summary>
    public RevocationFinding? Find(ExpertIdentity expert)
    {
        var folder = VersionFolder(expert);
        if (!Directory.Exists(folder))
        {
            return null;
        }

        foreach (var path in Directory.EnumerateFiles(folder, "*.json").Order(StringComparer.Ordinal).Take(MaxEntriesPerVersion))
        {
            Entry? entry;
            try
            {
                entry = new FileInfo(path).Length <= MaxEntryBytes ? JsonSerializer.Deserialize<Entry>(File.ReadAllBytes(path), Options) : null;
            }
            catch (JsonException)
            {
                entry = null;
            }

            if (entry is null || entry.Name != expert.Name || entry.Version != expert.Version)
            {
                return new RevocationFinding(expert.Reference, RevocationBasis.Unverifiable, $"this machine's record {path} of a revocation is damaged; delete it only if you know the expert was never revoked", null, null, path, Remembered: true);
            }

            var sameContent = entry.ContentSha256 is not null && entry.ContentSha256 == expert.ContentSha256;
            var sameOwner = entry.Owner is not null && entry.Owner == expert.Owner;
            if (sameContent || sameOwner)
            {
                return new RevocationFinding(expert.Reference, entry.Basis, entry.Reason, entry.RevokedAt, entry.RevokedBy, entry.Source, Remembered: true);
            }
        }

        return null;
    }

    private string VersionFolder(ExpertIdentity expert) => Path.Combine(Folder, Naming.CheckName(expert.Name), Naming.CheckVersion(expert.Version));

    private sealed record Entry(
        string Name,
        string Version,
        string? ContentSha256,
        string? Owner,
        RevocationBasis Basis,
        string Reason,
        DateTimeOffset? RevokedAt,
        string? RevokedBy,
        string Source,
        DateTimeOffset SeenAt);
}
