using System.Text.Json.Serialization;

namespace FlexOlmo.Packages;

/// <summary>The dimensions an expert must share with its anchor.</summary>
public sealed record Architecture(string ModelType, int HiddenSize, int IntermediateSize, int NumHiddenLayers, int VocabSize);

/// <summary>
/// How a router embedding was made (method A.2 of the paper: the mean embedding of sampled documents; or
/// "router-row": taken from the routers of a released model, one row per layer when <see cref="Layers"/> is set).
/// </summary>
public sealed record RouterEmbeddingProvenance(
    string Method,
    int Width,
    int? Samples = null,
    string? Source = null,
    string? SourceSha256 = null,
    Projection? Projection = null,
    int? Layers = null);

/// <summary>A seeded random orthogonal projection from an external embedder's width to the model width.</summary>
public sealed record Projection(string Kind, int FromWidth, long Seed);

/// <summary>The anchor an expert was trained against.</summary>
public sealed record AnchorReference(string Fingerprint, string? Name = null);

/// <summary>Training settings and results of an expert.</summary>
public sealed record TrainingRecord(
    long Steps,
    long Tokens,
    int SeqLen,
    long BatchTokens,
    double Lr,
    long Warmup,
    long Seed,
    string Dtype,
    string? Device = null,
    long? DataDocuments = null,
    ValidationRecord? Validation = null,
    string? Ablation = null);

/// <summary>Held-out perplexity of the anchor alone and of anchor + expert.</summary>
public sealed record ValidationRecord(long Tokens, double AnchorPerplexity, double ExpertPerplexity);

/// <summary>
/// Where an expert that this tool did not train came from (imported, or decomposed from a composed model). Import
/// records the source's tensor fingerprint; decompose does not hash its whole source a second time (the anchor's
/// fingerprint names the public part, the weights file's digest the expert).
/// </summary>
public sealed record ExpertOrigin(string Kind, string SourceConfigSha256, string? SourceTensorsSha256, int SourceExpert, string RouterBias, string? Source = null)
{
    public const string Imported = "imported";
    public const string Decomposed = "decomposed";
    public const string NoBias = "none";
    public const string BiasFromSidecar = "from-sidecar";
}

/// <summary>
/// What the owner's extraction audit (<c>flexolmo audit-extraction</c>) found for this expert: the share of sampled
/// training documents the expert's 2-expert model gave back from a prefix, with the anchor's own rate as the
/// baseline. Added at publish time (<c>publish --audit</c>), when the owner asks.
/// </summary>
public sealed record ExtractionAuditSummary(
    double Rate, int Documents, int Extracted, double? AnchorRate, int PrefixTokens, int ContinuationTokens, int Samples, double Threshold, string ReportSha256);

/// <summary>The program that wrote a file.</summary>
public sealed record ToolInfo(string Name, string Version)
{
    public static ToolInfo Current { get; } = new("flexolmo.net", typeof(ToolInfo).Assembly.GetName().Version?.ToString(3) ?? "0.0.0");
}

/// <summary>expert.json: see schemas/expert-manifest.schema.json.</summary>
public sealed record ExpertManifest(
    string Name,
    string Version,
    string Owner,
    string License,
    AnchorReference Anchor,
    Architecture Architecture,
    RouterEmbeddingProvenance RouterEmbedding,
    TrainingRecord? Training,
    IReadOnlyList<FileDigest> Files,
    DateTimeOffset Created,
    ToolInfo Tool,
    string? Description = null,
    ExpertOrigin? Origin = null,
    ExtractionAuditSummary? ExtractionAudit = null)
{
    public const string FileName = "expert.json";
    public const string FormatTag = "flexolmo-expert/1";

    public string Format { get; init; } = FormatTag;

    [JsonIgnore]
    public string Reference => $"{Name}@{Version}";
}

/// <summary>The model of an anchor: a folder inside the anchor ("model") or an absolute path it refers to.</summary>
public sealed record AnchorModel(string Path, Architecture Architecture);

/// <summary>The public router embedding r_pub of an anchor.</summary>
public sealed record AnchorRouterEmbedding(string Path, RouterEmbeddingProvenance Provenance);

/// <summary>anchor.json: see schemas/anchor-manifest.schema.json.</summary>
public sealed record AnchorManifest(
    string Name,
    string Fingerprint,
    AnchorModel Model,
    AnchorRouterEmbedding RouterEmbedding,
    IReadOnlyList<FileDigest> Files,
    DateTimeOffset Created,
    ToolInfo Tool,
    string? Description = null)
{
    public const string FileName = "anchor.json";
    public const string FormatTag = "flexolmo-anchor/1";

    public string Format { get; init; } = FormatTag;
}

/// <summary>
/// An owner's withdrawal of consent for one published expert version: bound to its name, version and the digest of
/// the manifest content the owner signed (<see cref="SignedDocument{T}.ContentSha256"/>). Records written before
/// content digests carry only <see cref="ManifestSha256"/> (the manifest file's bytes).
/// </summary>
public sealed record RevocationRecord(string Name, string Version, string? ContentSha256, string Reason, DateTimeOffset RevokedAt, string? ManifestSha256 = null)
{
    public const string FormatTag = "flexolmo-revocation/1";

    public string Format { get; init; } = FormatTag;
}
