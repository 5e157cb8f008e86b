using System.Globalization;

namespace FlexOlmo.Core.Modeling;

/// <summary>
/// The experts one batch row may use. Excluding an expert sets its router logit to -inf before the softmax,
/// which is exactly what removing its router row and FFN from the checkpoint does. Experts are indices
/// 0..E-1 (0 is the public expert); names come from a composed model's sidecar.
/// </summary>
public sealed class ExpertSet : IEquatable<ExpertSet>
{
    private readonly bool[] _allowed;

    private ExpertSet(bool[] allowed)
    {
        if (!allowed.Any(a => a))
        {
            throw new ExpertMaskException("The expert selection leaves no expert; at least one must stay (the public expert 0 is the usual choice).");
        }

        _allowed = allowed;
    }

    public int NumExperts => _allowed.Length;

    public bool IsAll => _allowed.All(a => a);

    public IReadOnlyList<int> Allowed => Enumerable.Range(0, _allowed.Length).Where(i => _allowed[i]).ToArray();

    public bool Contains(int expert) => expert >= 0 && expert < _allowed.Length && _allowed[expert];

    public static ExpertSet All(int numExperts) => new(Enumerable.Repeat(true, numExperts).ToArray());

    public static ExpertSet Include(int numExperts, IEnumerable<int> experts)
    {
        var allowed = new bool[numExperts];
        foreach (var e in experts)
        {
            allowed[Check(numExperts, e)] = true;
        }

        return new ExpertSet(allowed);
    }

    public static ExpertSet Exclude(int numExperts, IEnumerable<int> experts)
    {
        var allowed = Enumerable.Repeat(true, numExperts).ToArray();
        foreach (var e in experts)
        {
            allowed[Check(numExperts, e)] = false;
        }

        return new ExpertSet(allowed);
    }

    /// <summary>This set with <paramref name="experts"/> removed (for example revoked experts).</summary>
    public ExpertSet Without(IEnumerable<int> experts)
    {
        var allowed = (bool[])_allowed.Clone();
        foreach (var e in experts)
        {
            allowed[Check(NumExperts, e)] = false;
        }

        return new ExpertSet(allowed);
    }

    /// <summary>
    /// Parses the <c>--include-experts</c>/<c>--exclude-experts</c> pair: comma-separated indices or names
    /// (<paramref name="names"/>, from the model's sidecar, in router order). Neither given: all experts.
    /// </summary>
    public static ExpertSet Parse(string? include, string? exclude, int numExperts, IReadOnlyList<string>? names = null)
    {
        if (!string.IsNullOrWhiteSpace(include) && !string.IsNullOrWhiteSpace(exclude))
        {
            throw new ExpertMaskException("Give --include-experts or --exclude-experts, not both.");
        }

        if (!string.IsNullOrWhiteSpace(include))
        {
            return Include(numExperts, Resolve(include, numExperts, names));
        }

        if (!string.IsNullOrWhiteSpace(exclude))
        {
            return Exclude(numExperts, Resolve(exclude, numExperts, names));
        }

        return All(numExperts);
    }

    /// <summary>Resolves a list of expert references (indices or sidecar names) to indices.</summary>
    public static IReadOnlyList<int> Resolve(string list, int numExperts, IReadOnlyList<string>? names) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(item => ResolveOne(item, numExperts, names)).ToArray();

    /// <summary>Resolves one expert reference: an index 0..E-1 or a name from the sidecar.</summary>
    public static int ResolveOne(string item, int numExperts, IReadOnlyList<string>? names)
    {
        if (int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            return Check(numExperts, index);
        }

        var found = names is null ? -1 : names.ToList().IndexOf(item);
        if (found < 0)
        {
            var known = names is { Count: > 0 } ? $"names {string.Join(", ", names)} or " : string.Empty;
            throw new ExpertMaskException($"Unknown expert '{item}'; this model has {known}indices 0..{numExperts - 1}.");
        }

        return found;
    }

    private static int Check(int numExperts, int expert) =>
        expert >= 0 && expert < numExperts ? expert : throw new ExpertMaskException($"Unknown expert {expert}; this model has experts 0..{numExperts - 1}.");

    public bool Equals(ExpertSet? other) => other is not null && _allowed.AsSpan().SequenceEqual(other._allowed);

    public override bool Equals(object? obj) => Equals(obj as ExpertSet);

    public override int GetHashCode() => _allowed.Aggregate(17, (h, a) => (h * 31) + (a ? 1 : 0));

    public override string ToString() => IsAll ? "all" : string.Join(",", Allowed);
}
