using FlexOlmo.Registry;

namespace FlexOlmo.Serving;

/// <summary>
/// What the server knows about its experts' consent, read at every decode step. Revocations are sticky: once an
/// expert was seen revoked it stays excluded for the server's lifetime, whatever the registry later shows. When the
/// registry cannot be read for longer than the grace period (or was never read), every expert that the registry
/// governs is suspended, so an unreachable registry never means "nothing is revoked". Failures are kept for
/// /health and /metrics.
/// </summary>
internal sealed class RevocationState
{
    private readonly Lock _gate = new();
    private readonly Dictionary<int, RevocationFinding> _findings = [];
    private volatile int[] _revoked = [];
    private int[] _tracked = [];
    private TimeSpan _grace;

    /// <summary>Experts revoked by their owners (never shrinks).</summary>
    public IReadOnlyList<int> Revoked => _revoked;

    /// <summary>The experts checked against the registry (0 when the server has no --registry).</summary>
    public IReadOnlyList<int> Tracked => _tracked;

    public bool Checking => _tracked.Length > 0;

    public DateTimeOffset? LastSuccess { get; private set; }

    public DateTimeOffset? LastAttempt { get; private set; }

    public string? LastError { get; private set; }

    public long Successes { get; private set; }

    public long Failures { get; private set; }

    /// <summary>Whether the revocation state is too old to trust: every tracked expert is then excluded.</summary>
    public bool Suspended => Checking && (LastSuccess is not { } last || DateTimeOffset.UtcNow - last > _grace);

    /// <summary>What every request must leave out right now: revoked experts, and all tracked ones while suspended.</summary>
    public IReadOnlyList<int> Excluded => Suspended ? _tracked : _revoked;

    public IReadOnlyDictionary<int, RevocationFinding> Findings
    {
        get
        {
            lock (_gate)
            {
                return new Dictionary<int, RevocationFinding>(_findings);
            }
        }
    }

    public bool IsRevoked(int expert) => Array.IndexOf(_revoked, expert) >= 0;

    /// <summary>Starts checking <paramref name="experts"/> (never the public expert 0); they stay suspended until a check succeeds.</summary>
    public void Track(IEnumerable<int> experts, TimeSpan grace)
    {
        _tracked = experts.Where(e => e != 0).Distinct().Order().ToArray();
        _grace = grace;
    }

    public void Revoke(int expert, RevocationFinding finding)
    {
        if (expert == 0)
        {
            return; // the public expert cannot be revoked
        }

        lock (_gate)
        {
            _findings.TryAdd(expert, finding);
            _revoked = _findings.Keys.Order().ToArray();
        }
    }

    public void Succeeded()
    {
        lock (_gate)
        {
            LastAttempt = LastSuccess = DateTimeOffset.UtcNow;
            LastError = null;
            Successes++;
        }
    }

    public void Failed(string error)
    {
        lock (_gate)
        {
            LastAttempt = DateTimeOffset.UtcNow;
            LastError = error;
            Failures++;
        }
    }
}
