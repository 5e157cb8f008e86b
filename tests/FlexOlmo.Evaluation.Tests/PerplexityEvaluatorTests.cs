using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Data;
using FlexOlmo.Formats;
using FlexOlmo.Packages;
using static TorchSharp.torch;

namespace FlexOlmo.Evaluation.Tests;

[Collection(EvaluationCollection.Name)]
public sealed class PerplexityEvaluatorTests(EvaluationFixture fixture)
{
    [Fact]
    public void Evaluate_DefaultMasks_CoverComposedAnchorOnlyAndWithoutEachExpert()
    {
        var report = fixture.Evaluate(fixture.Composed);

        Assert.Equal(["public", "counting", "chemistry"], report.Experts);
        Assert.Equal(["composed", "anchor", "only:counting", "only:chemistry", "without:counting", "without:chemistry"], report.Masks);
        Assert.Equal(["public", "counting", "chemistry"], report.Domains);
        Assert.Equal("composed", report.Kind);
        Assert.Equal(3, report.ExpertsPerToken);
        Assert.All(report.Domains, d => Assert.Equal(512, report.Tokens[d]));
        Assert.Equal(["public", "counting"], report.MaskExperts["only:counting"]);
        Assert.All(report.Masks, m => Assert.All(report.Domains, d => Assert.True(double.IsFinite(report[m, d]) && report[m, d] > 1, $"{m} on {d}: {report[m, d]}")));
    }

    [Fact]
    public void Evaluate_AnchorMaskOfComposedModel_EqualsTheDenseAnchorExactly()
    {
        var composed = fixture.Evaluate(fixture.Composed, ["anchor"]);
        var anchor = fixture.Evaluate(fixture.Training.AnchorFolder);

        Assert.Equal("anchor", anchor.Kind);
        Assert.Equal(["anchor"], anchor.Masks);
        foreach (var domain in composed.Domains)
        {
            Assert.Equal(anchor["anchor", domain], composed["anchor", domain]);
        }
    }

    [Fact]
    public void Evaluate_ExpertsOnTheirOwnDomains_BeatTheAnchor()
    {
        var report = fixture.Evaluate(fixture.Composed);

        Assert.True(report["only:counting", "counting"] < report["anchor", "counting"], $"{report["only:counting", "counting"]} vs {report["anchor", "counting"]}");
        Assert.True(report["only:chemistry", "chemistry"] < report["anchor", "chemistry"], $"{report["only:chemistry", "chemistry"]} vs {report["anchor", "chemistry"]}");
    }

    [Fact]
    public void Evaluate_BareExpertPackageOnItsAnchor_MatchesTheModelComposedOfItAlone()
    {
        var single = fixture.Compose("counting-only", [fixture.Counting.Folder], k: 2);

        var fromPackage = fixture.Evaluate(fixture.Counting.Folder, anchor: fixture.Training.AnchorFolder);
        var fromComposed = fixture.Evaluate(single);

        Assert.Equal("expertpackage", fromPackage.Kind);
        Assert.Equal(["composed", "anchor"], fromPackage.Masks);
        foreach (var domain in fromPackage.Domains)
        {
            Assert.Equal(fromComposed["composed", domain], fromPackage["composed", domain]);
            Assert.Equal(fromComposed["anchor", domain], fromPackage["anchor", domain]);
        }
    }

    [Fact]
    public void Evaluate_ExportedTwoExpertModel_MatchesThePackageOnItsAnchor()
    {
        using var folder = new TempDirectory("eval-export");
        var exported = FlexOlmo.Composition.Released.ExpertExporter.Export(
            new FlexOlmo.Composition.Released.ExportRequest { Package = fixture.Chemistry.Folder, Anchor = fixture.Training.AnchorFolder, Out = folder.File("model") },
            null,
            CancellationToken.None);
        File.Delete(Path.Combine(exported.Folder, ComposedSidecar.FileName)); // what a colleague's transformers sees: the checkpoint alone

        var fromPackage = fixture.Evaluate(fixture.Chemistry.Folder, anchor: fixture.Training.AnchorFolder);
        var fromExport = fixture.Evaluate(exported.Folder);

        Assert.Equal(["public", "expert-1"], fromExport.Experts);
        foreach (var domain in fromPackage.Domains)
        {
            foreach (var mask in new[] { "composed", "anchor" })
            {
                var (a, b) = (fromPackage[mask, domain], fromExport[mask, domain]);
                Assert.True(Math.Abs(a - b) <= 1e-4, $"{mask} on {domain}: package {a}, exported {b}");
            }
        }
    }

    [Fact]
    public void Evaluate_BareExpertPackageWithoutAnchor_AsksForAnchor()
    {
        var error = Assert.Throws<EvaluationException>(() => fixture.Evaluate(fixture.Counting.Folder));

        Assert.Contains("--anchor", error.Message, StringComparison.Ordinal);
        Assert.Contains(fixture.Counting.Folder, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_OneWindow_EqualsCrossEntropyComputedFromTheLogits()
    {
        using var folder = new TempDirectory("eval-window");
        var ids = Enumerable.Range(0, 40).Select(i => (ushort)((i * 37) % 320)).ToArray();
        var shard = Path.Combine(folder.Path, "ids.bin");
        File.WriteAllBytes(shard, ids.SelectMany(BitConverter.GetBytes).ToArray());

        var report = PerplexityEvaluator.Evaluate(
            new EvaluationRequest { Model = fixture.Training.ModelFolder, Domains = [new("ids", [shard])], SeqLen = 16, MaxTokens = 16, TokenCache = fixture.TokenCache },
            null,
            null,
            CancellationToken.None);

        using var model = CheckpointLoader.Load(fixture.Training.ModelFolder, CPU);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad(); // as the evaluator runs, so both take the same kernels
        var tokens = tensor(ids.Take(17).Select(i => (long)i).ToArray(), [1, 17]); // [1, L+1]
        var logits = model.Forward(tokens.narrow(1, 0, 16)); // [1, L, V]
        var expected = Math.Exp(PerplexityMeter.SumCrossEntropy(logits, tokens.narrow(1, 1, 16)) / 16);
        Assert.Equal(16, report.Tokens["ids"]);
        Assert.Equal(Math.Round(expected, 4), report["anchor", "ids"]);
    }

    [Fact]
    public void Evaluate_DomainShorterThanOneWindow_NamesDomainAndSeqLen()
    {
        using var folder = new TempDirectory("eval-short");
        var text = Path.Combine(folder.Path, "tiny.txt");
        File.WriteAllText(text, "one two");

        var error = Assert.Throws<EvaluationException>(() => PerplexityEvaluator.Evaluate(
            new EvaluationRequest { Model = fixture.Composed, Domains = [new("tiny", [text])], SeqLen = 64, TokenCache = fixture.TokenCache },
            null,
            null,
            CancellationToken.None));

        Assert.Contains("--data tiny", error.Message, StringComparison.Ordinal);
        Assert.Contains("--seq-len", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_SeqLenBeyondTheModel_IsRejected()
    {
        var error = Assert.Throws<EvaluationException>(() => fixture.Evaluate(fixture.Composed, seqLen: 4096));

        Assert.Contains("max_position_embeddings (128)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FolderThatIsNoModel_SaysWhatItExpected()
    {
        using var folder = new TempDirectory("eval-empty");

        var error = Assert.Throws<EvaluationException>(() => fixture.Evaluate(folder.Path));

        Assert.Contains("config.json, anchor.json or expert.json", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_UnknownExpertInAMask_IsRejectedBeforeAnyWeightLoads()
    {
        // The composed model's config and sidecar without its weights: a mask error must come first, not a load error
        // (on a 1B-class model the load alone is 8 GB and a minute).
        using var folder = new TempDirectory("eval-no-weights");
        foreach (var file in Directory.GetFiles(fixture.Composed).Where(f => !f.EndsWith(".safetensors", StringComparison.Ordinal) && !f.EndsWith(".index.json", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(folder.Path, Path.GetFileName(file)));
        }

        var error = Assert.Throws<EvaluationException>(() => fixture.Evaluate(folder.Path, masks: ["only:nosuch"]));

        Assert.Contains("nosuch", error.Message, StringComparison.Ordinal);
        Assert.Contains("counting", error.Message, StringComparison.Ordinal); // names what the model has
    }

    [Fact]
    public void Evaluate_SameMaskTwice_IsRejected()
    {
        var error = Assert.Throws<EvaluationException>(() => fixture.Evaluate(fixture.Composed, ["all", "composed"]));

        Assert.Contains("'composed' is asked for twice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Save_WritesJsonMarkdownAndHtml_ThatReadBack()
    {
        using var folder = new TempDirectory("eval-report");
        var report = fixture.Evaluate(fixture.Composed, ["composed", "anchor", "only:counting"]);

        var paths = report.Save(Path.Combine(folder.Path, "out", "report"));
        var loaded = EvaluationReport.Load(paths[0]);

        Assert.Equal(report.Masks, loaded.Masks);
        Assert.Equal(report.Domains, loaded.Domains);
        Assert.Equal(report["only:counting", "counting"], loaded["only:counting", "counting"]);
        var markdown = File.ReadAllText(paths[1]);
        Assert.Contains("| mask | public | counting | chemistry |", markdown, StringComparison.Ordinal);
        Assert.Contains("Change against the anchor", markdown, StringComparison.Ordinal);
        var html = File.ReadAllText(paths[2]);
        const string marker = "data:image/png;base64,";
        var start = html.IndexOf(marker, StringComparison.Ordinal) + marker.Length;
        var png = Convert.FromBase64String(html[start..html.IndexOf('"', start)]);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Empty(Directory.GetFiles(Path.Combine(folder.Path, "out"), "*.tmp*"));
    }

    [Fact]
    public void Load_NotAReport_NamesTheFile()
    {
        using var folder = new TempDirectory("eval-bad");
        var path = Path.Combine(folder.Path, "report.json");
        File.WriteAllText(path, "{\"domains\": 3}");

        var error = Assert.Throws<EvaluationException>(() => EvaluationReport.Load(path));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<FlexOlmoException>(error);
    }

    [Theory]
    [InlineData(10, 3, new long[] { 0, 3, 6 })]
    [InlineData(2, 10, new long[] { 0, 1 })]
    [InlineData(5, 0, new long[] { 0 })]
    [InlineData(0, 4, new long[0])]
    public void Windows_SpreadEvenly_OverTheAvailableInstances(long available, long wanted, long[] expected) =>
        Assert.Equal(expected, PerplexityEvaluator.Windows(available, wanted));
}
