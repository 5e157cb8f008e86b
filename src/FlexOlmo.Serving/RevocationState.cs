namespace FlexOlmo.Serving;

/// <summary>The experts currently revoked by their owners (updated by <see cref="RevocationWatcher"/>, read at every decode step).</summary>
public sealed class RevocationState
{
    private volatile int[] _revoked = [];

    public IReadOnlyList<int> Revoked => _revoked;

    public DateTimeOffset? LastChecked { get; private set; }

    public string? LastError { get; private set; }

    public bool IsRevoked(int expert) => Array.IndexOf(_revoked, expert) >= 0;

    public void Update(IEnumerable<int> revoked)
    {
        _revoked = revoked.Where(e => e != 0).Distinct().Order().ToArray(); // the public expert cannot be revoked
        LastChecked = DateTimeOffset.UtcNow;
        LastError = null;
    }

    public void Failed(string error) => LastError = error;
}
