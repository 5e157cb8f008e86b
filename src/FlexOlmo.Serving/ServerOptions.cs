namespace FlexOlmo.Serving;

/// <summary>What <c>flexolmo serve</c> was asked to do.</summary>
public sealed record ServerOptions
{
    public required string Model { get; init; }

    public string Host { get; init; } = "127.0.0.1";

    public int Port { get; init; } = 8000;

    public string Device { get; init; } = "cpu";

    public string DType { get; init; } = "auto";

    /// <summary>Sequences decoded together.</summary>
    public int MaxBatch { get; init; } = 16;

    /// <summary>Sequences waiting for a batch slot before new requests get 429.</summary>
    public int MaxQueue { get; init; } = 64;

    public int MaxPromptTokens { get; init; } = 4096;

    public int MaxTokens { get; init; } = 1024;

    public string? ApiKeys { get; init; }

    public string? Registry { get; init; }

    public string? ConnectionString { get; init; }

    public double RevocationPollSeconds { get; init; } = 60;

    /// <summary>Name reported in responses and /v1/models (default: the sidecar's name or the folder's).</summary>
    public string? ModelName { get; init; }
}
