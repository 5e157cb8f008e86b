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

    /// <summary>
    /// How long the server may go without a successful revocation check before it suspends every published expert
    /// (default: ten poll intervals, at least two minutes).
    /// </summary>
    public double? RevocationGraceSeconds { get; init; }

    /// <summary>Where seen revocations are remembered (default: the machine's, in $FLEXOLMO_HOME).</summary>
    public string? RevocationLedgerFolder { get; init; }

    public TimeSpan RevocationGrace => TimeSpan.FromSeconds(RevocationGraceSeconds ?? Math.Max(10 * RevocationPollSeconds, 120));

    /// <summary>Name reported in responses and /v1/models (default: the sidecar's name or the folder's).</summary>
    public string? ModelName { get; init; }

    /// <summary>Checks every setting before anything is loaded; the message names the option.</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535)
        {
            throw new Formats.FlexOlmoException($"--port must be between 0 and 65535 (got {Port}; 0 picks a free port).");
        }

        // An IP address or localhost only: for any other name Kestrel would listen on every interface.
        if (Host != "localhost" && !System.Net.IPAddress.TryParse(Host, out _))
        {
            throw new Formats.FlexOlmoException($"--host '{Host}' must be an IP address (127.0.0.1, ::1, or 0.0.0.0 for every interface) or localhost.");
        }

        Range("--max-batch", MaxBatch, 1, 1024);
        Range("--max-queue", MaxQueue, 1, 1_000_000);
        Range("--max-prompt-tokens", MaxPromptTokens, 1, 1 << 21);
        Range("--max-tokens", MaxTokens, 1, 1 << 21);
        if (!double.IsFinite(RevocationPollSeconds) || RevocationPollSeconds < 0.1 || RevocationPollSeconds > 86400)
        {
            throw new Formats.FlexOlmoException($"--revocation-poll must be between 0.1 and 86400 seconds (got {RevocationPollSeconds}).");
        }

        if (Registry is not null)
        {
            FlexOlmo.Registry.RegistryConnection.CheckSyntax(Registry);
        }

        if (RevocationGraceSeconds is { } grace && (!double.IsFinite(grace) || grace < 0 || grace > 30 * 86400))
        {
            throw new Formats.FlexOlmoException($"--revocation-grace must be between 0 and 2592000 seconds (got {grace}).");
        }
    }

    private static void Range(string option, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            throw new Formats.FlexOlmoException($"{option} must be between {min} and {max} (got {value}).");
        }
    }
}
