using FlexOlmo.Evaluation.Corpora;

namespace FlexOlmo.Cli.Demo;

/// <summary>Where the demo's text lives: data/DOMAIN/train and data/DOMAIN/heldout, one .txt file per Brown text.</summary>
internal sealed class DemoData(string work)
{
    public string Root { get; } = Path.Combine(work, "data");

    public string Train(DemoDomain domain) => Path.Combine(Root, domain.Name, "train");

    public string HeldOut(DemoDomain domain) => Path.Combine(Root, domain.Name, "heldout");

    /// <summary>Writes every text of the domains' genres; text number N goes to held-out when N is a multiple of <paramref name="heldOutEvery"/>.</summary>
    public IReadOnlyDictionary<string, (int Train, int HeldOut)> Write(IReadOnlyList<BrownText> texts, int heldOutEvery)
    {
        var counts = new Dictionary<string, (int Train, int HeldOut)>();
        foreach (var domain in DemoDomain.All)
        {
            Directory.CreateDirectory(Train(domain));
            Directory.CreateDirectory(HeldOut(domain));
            var (train, heldOut) = (0, 0);
            foreach (var text in texts.Where(t => domain.Genres.Contains(t.Genre)))
            {
                var held = text.Number % heldOutEvery == 0;
                File.WriteAllText(Path.Combine(held ? HeldOut(domain) : Train(domain), text.Id + ".txt"), text.Text);
                (train, heldOut) = held ? (train, heldOut + 1) : (train + 1, heldOut);
            }

            counts[domain.Name] = (train, heldOut);
        }

        return counts;
    }
}
