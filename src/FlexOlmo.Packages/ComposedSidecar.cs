using System.Text.Json;

namespace FlexOlmo.Packages;

/// <summary>
/// One expert of a composed model, in router order (index 0 is the public expert from the anchor): who owns it, the
/// digests that identify what its owner published (<see cref="ContentSha256"/> is what a revocation names), its
/// signer, and whether that signer was checked against trusted keys when it was composed.
/// </summary>
public sealed record SidecarExpert(
    int Index,
    string Name,
    string? Version,
    string Owner,
    string License,
    string Source,
    string? ManifestSha256,
    string? SignedBy,
    IReadOnlyList<float>? RouterBias)
{
    public string? ContentSha256 { get; init; }

    public bool? Verified { get; init; }
}

/// <summary>
/// flexolmo.json, written beside a composed checkpoint: the experts in router order with their owners, licences,
/// manifest hashes and signers, the router biases b_i (not part of Hugging Face checkpoints, left out of routing by
/// default), the recipe's hash and the tool that wrote it.
/// </summary>
public sealed record ComposedSidecar(
    string Name,
    string AnchorName,
    string AnchorFingerprint,
    IReadOnlyList<SidecarExpert> Experts,
    int ExpertsPerToken,
    string? RecipeSha256,
    DateTimeOffset Created,
    ToolInfo Tool,
    string? RouterTuning = null)
{
    public const string FileName = "flexolmo.json";
    public const string PublicName = "public";

    public string Format { get; init; } = "flexolmo-composed/1";

    public IReadOnlyList<string> ExpertNames => Experts.Select(e => e.Name).ToList();

    /// <summary>The name of expert <paramref name="index"/> in a model without a sidecar: "public" for 0, then "expert-N".</summary>
    public static string DefaultName(int index) => index == 0 ? PublicName : $"expert-{index}";

    /// <summary>Expert names of a FlexOlmo model folder in router order: its sidecar's when they fit, else <see cref="DefaultName"/>.</summary>
    public static IReadOnlyList<string> ExpertNamesOf(string folder, int numExperts) =>
        TryLoad(folder) is { } sidecar && sidecar.Experts.Count == numExperts ? sidecar.ExpertNames : Enumerable.Range(0, numExperts).Select(DefaultName).ToList();

    /// <summary>The sidecar of a model folder, or null when it has none (any Hugging Face FlexOlmo checkpoint).</summary>
    public static ComposedSidecar? TryLoad(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<ComposedSidecar>(SignedDocument<ExpertManifest>.ReadBounded(path), SignedDocument<ExpertManifest>.Options)
                ?? throw new PackageException($"{path}: empty.");
        }
        catch (JsonException e)
        {
            throw new PackageException($"{path}: not a FlexOlmo sidecar ({e.Message}).");
        }
    }

    public void Save(string folder) =>
        Formats.AtomicFile.WriteAllText(Path.Combine(folder, FileName), JsonSerializer.Serialize(this, SignedDocument<ExpertManifest>.Options) + "\n");
}
