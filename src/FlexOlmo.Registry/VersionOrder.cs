namespace FlexOlmo.Registry;

/// <summary>Orders versions as people expect: numeric parts numerically (1.10.0 after 1.9.0), a pre-release before its release.</summary>
internal sealed class VersionOrder : IComparer<string>
{
    public static readonly VersionOrder Instance = new();

    public int Compare(string? x, string? y)
    {
        if (x is null || y is null)
        {
            return string.CompareOrdinal(x, y);
        }

        var (xCore, xPre) = Split(x);
        var (yCore, yPre) = Split(y);
        var xParts = xCore.Split('.');
        var yParts = yCore.Split('.');
        for (var i = 0; i < Math.Max(xParts.Length, yParts.Length); i++)
        {
            var a = i < xParts.Length ? xParts[i] : "0";
            var b = i < yParts.Length ? yParts[i] : "0";
            var byNumber = long.TryParse(a, out var na) && long.TryParse(b, out var nb) ? na.CompareTo(nb) : string.CompareOrdinal(a, b);
            if (byNumber != 0)
            {
                return byNumber;
            }
        }

        return (xPre, yPre) switch
        {
            (null, null) => 0,
            (null, _) => 1,
            (_, null) => -1,
            _ => string.CompareOrdinal(xPre, yPre),
        };
    }

    private static (string Core, string? PreRelease) Split(string version)
    {
        var build = version.IndexOf('+');
        var core = build >= 0 ? version[..build] : version;
        var dash = core.IndexOf('-');
        return dash >= 0 ? (core[..dash], core[(dash + 1)..]) : (core, null);
    }
}
