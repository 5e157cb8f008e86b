using FlexOlmo.Core.Modeling;
using FlexOlmo.Formats;

namespace FlexOlmo.Evaluation;

/// <summary>
/// One row of an evaluation: a label and the experts it lets the router use. Specs:
/// <c>composed</c> (or <c>all</c>): every expert; <c>anchor</c>: the public expert alone, exactly the dense anchor;
/// <c>only:X</c>: the public expert and X; <c>without:X</c>: every expert but X; or an include list of names or
/// indices joined by <c>+</c> or <c>,</c> (<c>public+news</c>). X may itself be a <c>+</c> list.
/// </summary>
public sealed record ExpertMaskSpec(string Label, ExpertSet Experts)
{
    public const string Composed = "composed";
    public const string Anchor = "anchor";

    /// <summary>The default rows: composed and anchor, then only:X and without:X for every non-public expert.</summary>
    public static IReadOnlyList<ExpertMaskSpec> Defaults(IReadOnlyList<string> expertNames)
    {
        var n = expertNames.Count;
        if (n == 1)
        {
            return [new ExpertMaskSpec(Anchor, ExpertSet.All(1))];
        }

        var specs = new List<ExpertMaskSpec> { Parse(Composed, expertNames), Parse(Anchor, expertNames) };
        if (n > 2)
        {
            specs.AddRange(expertNames.Skip(1).Select(x => Parse($"only:{x}", expertNames)));
            specs.AddRange(expertNames.Skip(1).Select(x => Parse($"without:{x}", expertNames)));
        }

        return specs;
    }

    /// <summary>Parses one spec against the model's expert names (router order, "public" first).</summary>
    public static ExpertMaskSpec Parse(string spec, IReadOnlyList<string> expertNames)
    {
        var n = expertNames.Count;
        var text = spec.Trim();
        if (text.Contains(',', StringComparison.Ordinal) && text.Split(',').Any(p => p.Trim() is Composed or "all" or Anchor || p.Contains(':', StringComparison.Ordinal)))
        {
            throw new EvaluationException($"mask '{spec}': separate masks with spaces (--masks composed anchor only:X); commas join the experts of one include list (public,X).");
        }

        try
        {
            switch (text)
            {
                case Composed or "all":
                    return new ExpertMaskSpec(n == 1 ? Anchor : Composed, ExpertSet.All(n));
                case Anchor or "public":
                    return new ExpertMaskSpec(Anchor, ExpertSet.Include(n, [0]));
            }

            if (text.StartsWith("only:", StringComparison.Ordinal))
            {
                var experts = Resolve(text["only:".Length..], expertNames);
                return new ExpertMaskSpec($"only:{Names(experts, expertNames)}", ExpertSet.Include(n, experts.Prepend(0)));
            }

            if (text.StartsWith("without:", StringComparison.Ordinal))
            {
                var experts = Resolve(text["without:".Length..], expertNames);
                if (experts.Contains(0))
                {
                    throw new EvaluationException($"mask '{spec}': the public expert cannot be left out; it is the anchor every expert was trained with.");
                }

                return new ExpertMaskSpec($"without:{Names(experts, expertNames)}", ExpertSet.Exclude(n, experts));
            }

            if (text.Contains(':', StringComparison.Ordinal))
            {
                throw new EvaluationException($"mask '{spec}': unknown form; use composed, anchor, only:X, without:X or an include list such as public+{(n > 1 ? expertNames[1] : "X")}.");
            }

            var included = Resolve(text, expertNames);
            var set = ExpertSet.Include(n, included);
            return new ExpertMaskSpec(set.IsAll ? Composed : Names(set.Allowed, expertNames), set);
        }
        catch (FlexOlmoException e) when (e is not EvaluationException)
        {
            throw new EvaluationException($"mask '{spec}': {e.Message}");
        }
    }

    private static int[] Resolve(string list, IReadOnlyList<string> expertNames)
    {
        var items = list.Split(['+', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (items.Length == 0)
        {
            throw new ExpertMaskException("names no expert.");
        }

        return items.Select(item => ExpertSet.ResolveOne(item, expertNames.Count, expertNames)).Distinct().ToArray();
    }

    private static string Names(IEnumerable<int> experts, IReadOnlyList<string> expertNames) => string.Join("+", experts.Order().Select(i => expertNames[i]));
}
