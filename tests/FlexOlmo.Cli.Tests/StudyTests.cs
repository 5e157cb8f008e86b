using System.Text.Json;
using FlexOlmo.Evaluation;
using FlexOlmo.Evaluation.Study;
using FlexOlmo.Packages;

namespace FlexOlmo.Cli.Tests;

/// <summary>
/// <c>flexolmo study</c> end to end on synthetic text in the Brown corpus's layout (each domain with words of its
/// own), with the hidden tiny plan: the demo, then every baseline, FlexOlmo variant and ablation by the real commands.
/// </summary>
public sealed class StudyTests
{
    private static readonly string[] Owners = ["news", "science", "fiction"];

    [Fact]
    public async Task Study_Tiny_WritesEveryModelsRowAndChecksTheOrderings()
    {
        using var folder = new TempDirectory("study");
        var corpus = SyntheticBrown(folder.Sub("corpus"));
        var work = Path.Combine(folder.Path, "work");

        var run = await CliRun.RunAsync("study", "--tiny", "--work", work, "--corpus", corpus);

        Assert.True(run.ExitCode == 0, run.ToString());
        var report = StudyReport.Load(Path.Combine(work, "study", "study.json"));
        string[] keys =
        [
            "anchor", .. Owners.Select(o => $"expert-{o}"), "soup-uniform", "soup-weighted", "btm", "btx", "flexolmo", "rt", "k1", "k2", "k3", "k4", "no-bias", "no-init", "no-coordination",
        ];
        Assert.Equal(keys, report.Rows.Select(r => r.Key));
        Assert.All(report.Rows, r => Assert.All(report.Domains, d => Assert.True(double.IsFinite(r.Perplexity[d]) && r.Perplexity[d] > 1, $"{r.Key} on {d}: {r.Perplexity[d]}")));

        // Rows that must agree by construction: the demo's own report, and the demo's recipe composed again at its k.
        var demo = EvaluationReport.Load(Path.Combine(work, "report.json"));
        foreach (var owner in Owners)
        {
            Assert.Equal(demo[$"only:{owner}", owner], report[$"expert-{owner}"].Perplexity[owner]);
        }

        Assert.Equal(report["flexolmo"].Perplexity, report["k4"].Perplexity);
        Assert.NotEqual(report["k1"].Average, report["k4"].Average);
        Assert.NotEqual(report["soup-uniform"].Average, report["anchor"].Average);
        Assert.Equal(1.0, report.SoupWeights.Values.Sum(), 9);

        Assert.Equal(4, report.Orderings.Count);
        Assert.All(report.Orderings, o => Assert.False(string.IsNullOrWhiteSpace(o.Detail)));
        Assert.Contains("orderings hold at this scale", run.Output, StringComparison.Ordinal);
        Assert.Contains("<svg", File.ReadAllText(Path.Combine(work, "study", "study.html")), StringComparison.Ordinal);
        Assert.Contains("| baseline | BTM (top-2 ensemble) |", File.ReadAllText(Path.Combine(work, "study", "study.md")), StringComparison.Ordinal);

        // Each ablation's experts say what they are; the proxies hold public text only.
        foreach (var (ablation, says) in new[] { ("no-bias", "no bias"), ("no-init", "random router init"), ("no-coordination", "uncoordinated") })
        {
            foreach (var owner in Owners)
            {
                var expert = ExpertPackage.Open(Path.Combine(work, "study", "ablations", ablation, "experts", owner));
                Assert.Contains(says, expert.Manifest.Value.Training!.Ablation, StringComparison.Ordinal);
            }
        }

        var publicTexts = Directory.GetFiles(Path.Combine(work, "data", "public", "train")).Select(File.ReadAllText).ToHashSet();
        foreach (var owner in Owners)
        {
            var proxy = File.ReadAllLines(Path.Combine(work, "study", "proxy", $"{owner}.jsonl"));
            Assert.NotEmpty(proxy);
            Assert.All(proxy, line => Assert.Contains(JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!, publicTexts));
        }

        // A second run reuses every model and gives the same table.
        var again = await CliRun.RunAsync("study", "--tiny", "--work", work);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("reusing the finished demo", again.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("$ flexolmo train-expert", again.Output, StringComparison.Ordinal);
        var second = StudyReport.Load(Path.Combine(work, "study", "study.json"));
        Assert.Equal(report.Rows.Select(r => r.Average), second.Rows.Select(r => r.Average));

        // A study of another size than the demo there is refused, naming the flag.
        var other = await CliRun.RunAsync("study", "--quick", "--work", work);
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("--quick", other.Error, StringComparison.Ordinal);
    }

    /// <summary>The full study on the default demo and the real Brown corpus: about thirty minutes on 2 cores.</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public async Task Study_Default_OnTheBrownCorpus_WritesEveryRow()
    {
        using var folder = new TempDirectory("study-full");
        var work = Path.Combine(folder.Path, "work");

        var run = await CliRun.RunAsync("study", "--work", work);

        Assert.True(run.ExitCode == 0, run.ToString());
        var report = StudyReport.Load(Path.Combine(work, "study", "study.json"));
        Assert.Equal("default", report.Plan);
        Assert.Equal(19, report.Rows.Count);
        Assert.All(report.Rows, r => Assert.All(report.Domains, d => Assert.True(double.IsFinite(r.Perplexity[d]) && r.Perplexity[d] > 1, $"{r.Key} on {d}")));
        Assert.Equal(report["flexolmo"].Perplexity, report["k4"].Perplexity);
        Assert.Equal(4, report.Orderings.Count);
    }

    /// <summary>Brown-layout texts (word/tag tokens, ten per genre) whose domains use words of their own.</summary>
    private static string SyntheticBrown(string folder)
    {
        Directory.CreateDirectory(folder);
        string[] shared = ["the", "a", "of", "and", "to", "in", "is", "was", "it", "that"];
        var domains = new (string[] Genres, string[] Words)[]
        {
            (["cb", "cc", "cd", "ce", "cf", "cg", "ch"], ["church", "law", "state", "people", "government", "review", "music", "city", "faith", "country"]),
            (["ca"], ["jury", "election", "mayor", "police", "council", "vote", "senator", "court", "budget", "strike"]),
            (["cj"], ["cell", "energy", "molecule", "theory", "experiment", "acid", "electron", "sample", "measure", "rate"]),
            (["ck", "cl", "cm", "cn", "cp", "cr"], ["she", "he", "door", "night", "eyes", "smiled", "whispered", "dark", "house", "love"]),
        };
        var random = new Random(1);
        foreach (var (genres, words) in domains)
        {
            foreach (var genre in genres)
            {
                for (var n = 1; n <= 10; n++)
                {
                    var sentences = Enumerable.Range(0, 25).Select(_ =>
                        string.Join(' ', Enumerable.Range(0, 8).Select(w => (w % 2 == 0 ? words[random.Next(words.Length)] : shared[random.Next(shared.Length)]) + "/nn")) + " ./.");
                    File.WriteAllText(Path.Combine(folder, $"{genre}{n:00}"), string.Join("\n\n", sentences) + "\n");
                }
            }
        }

        return folder;
    }
}
