using System.Text.RegularExpressions;

namespace FlexOlmo.Evaluation;

/// <summary>A named body of held-out text: files, folders or globs (.txt, .jsonl(.gz), token shards).</summary>
public sealed partial record EvaluationDomain(string Name, IReadOnlyList<string> Paths)
{
    /// <summary>Parses <c>NAME=PATH</c> arguments; a name given twice collects all its paths, in order.</summary>
    public static IReadOnlyList<EvaluationDomain> Parse(IEnumerable<string> arguments)
    {
        var domains = new List<(string Name, List<string> Paths)>();
        foreach (var argument in arguments)
        {
            var equals = argument.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || equals == argument.Length - 1)
            {
                throw new EvaluationException($"--data '{argument}': write NAME=PATH, for example news=data/news/heldout (a file, folder or glob).");
            }

            var name = argument[..equals].Trim();
            if (!NamePattern().IsMatch(name))
            {
                throw new EvaluationException($"--data '{argument}': the domain name '{name}' must be letters, digits, '.', '_' or '-' (at most 64).");
            }

            var existing = domains.FindIndex(d => d.Name == name);
            if (existing < 0)
            {
                domains.Add((name, []));
                existing = domains.Count - 1;
            }

            domains[existing].Paths.Add(argument[(equals + 1)..]);
        }

        if (domains.Count == 0)
        {
            throw new EvaluationException("give at least one --data NAME=PATH.");
        }

        return domains.Select(d => new EvaluationDomain(d.Name, d.Paths)).ToList();
    }

    [GeneratedRegex(@"^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex NamePattern();
}
