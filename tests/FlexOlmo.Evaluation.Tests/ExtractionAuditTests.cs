using FlexOlmo.Evaluation.Extraction;
using FlexOlmo.Testing;
using FlexOlmo.Training;
using FlexOlmo.Training.Experts;

namespace FlexOlmo.Evaluation.Tests;

[Collection(EvaluationCollection.Name)]
public sealed class ExtractionAuditTests(EvaluationFixture fixture)
{
    private const int EndOfText = 320; // the fixture tokenizer's <|endoftext|>

    [Fact]
    public void Audit_FlagsAnExpertOverfitToItsDocuments_AndNotTheSameExpertBeforeOverfitting()
    {
        using var temp = new TempDirectory("extraction");
        // Two documents of 15 token ids each, no id used twice, taken from the ids the anchor saw in pretraining (their
        // embeddings are trained, so the FFN can tell them apart): what follows each id is then fixed, which an FFN expert
        // behind frozen attention can learn by heart. Token shards, separated by the end-of-text id. The audit samples
        // at a low temperature: this tiny expert's memory is sharp at the top of its distribution only.
        var data = Path.Combine(temp.Path, "secret.bin");
        var random = new Random(11);
        var known = File.ReadLines(fixture.Training.PublicData).SelectMany(line => fixture.Training.Tokenizer.Encode(System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!))
            .CountBy(id => id).OrderByDescending(c => c.Value).Select(c => c.Key).Where(id => id < EndOfText).ToList(); // ids whose embeddings the anchor learned (31 of them)
        var ids = known.OrderBy(_ => random.Next()).Take(30).ToList();
        var stream = ids.Chunk(15).SelectMany(document => document.Append(EndOfText)).Select(id => (ushort)id);
        File.WriteAllBytes(data, stream.SelectMany(BitConverter.GetBytes).ToArray());
        var before = Train(temp.Sub("before"), data, steps: 1, lr: 1e-5);
        var overfit = Train(temp.Sub("overfit"), data, steps: 1500, lr: 2e-2);

        var report = ExtractionAudit.Run(
            new ExtractionRequest
            {
                Models = [before, overfit],
                Anchor = fixture.Training.AnchorFolder,
                Data = [data],
                Prefix = 3,
                Continuation = 12,
                Samples = 4,
                Documents = 2,
                Temperature = 0.2,
                TokenCache = fixture.TokenCache,
            },
            null,
            CancellationToken.None);

        Assert.Equal(["anchor", "before", "overfit"], report.Rows.Select(r => r.Model));
        Assert.True(report.Rows.All(r => r.Documents == 2), $"documents: {string.Join(",", ids)}");
        Assert.Equal(0, report.Rows[0].Extracted);
        Assert.Equal(0, report.Rows[1].Extracted);
        Assert.True(report.Rows[2].Extracted >= 1, $"the overfit expert (final loss {LastLoss}) should give its documents back: {report.Rows[2]}");
        Assert.True(report.Rows[2].MeanBestSimilarity > report.Rows[1].MeanBestSimilarity + 0.3, $"{report.Rows[2]} vs {report.Rows[1]}");

        var saved = report.Save(Path.Combine(temp.Path, "audit.json"));
        var loaded = ExtractionReport.Load(saved[0]);
        Assert.Equal(report.Rows, loaded.Rows);
        Assert.Contains("| overfit |", File.ReadAllText(saved[1]), StringComparison.Ordinal);
    }

    [Fact]
    public void Audit_WithDocumentsShorterThanPrefixAndContinuation_SaysWhatToLower()
    {
        using var temp = new TempDirectory("extraction-short");
        var data = SyntheticCorpus.WriteJsonl(Path.Combine(temp.Path, "short.jsonl"), ["amber dune", "kelp"]);
        var error = Assert.Throws<EvaluationException>(() => ExtractionAudit.Run(
            new ExtractionRequest { Models = [fixture.Counting.Folder], Anchor = fixture.Training.AnchorFolder, Data = [data], TokenCache = fixture.TokenCache },
            null,
            CancellationToken.None));
        Assert.Contains("--prefix 32 + --continuation 256", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Audit_LongerThanTheModelsContext_SaysHowFarToLowerTheContinuation()
    {
        var error = Assert.Throws<EvaluationException>(() => ExtractionAudit.Run(
            new ExtractionRequest { Models = [fixture.Counting.Folder], Anchor = fixture.Training.AnchorFolder, Data = [fixture.Training.CountingData], Prefix = 64, Continuation = 100, TokenCache = fixture.TokenCache },
            null,
            CancellationToken.None));
        Assert.Contains("max_position_embeddings 128", error.Message, StringComparison.Ordinal);
        Assert.Contains("lower --continuation to 64", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReportLoad_RefusesAFileThatIsNotAnAudit()
    {
        using var temp = new TempDirectory("extraction-bad");
        var path = Path.Combine(temp.Path, "bad.json");
        File.WriteAllText(path, """{"format": "flexolmo-extraction-audit/1", "rows": [{"model": "x", "documents": 2, "extracted": 5}]}""");
        var error = Assert.Throws<EvaluationException>(() => ExtractionReport.Load(path));
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("abc", "abc", 1.0)]
    [InlineData("abcd", "abce", 0.75)]
    [InlineData("", "", 1.0)]
    [InlineData("abc", "", 0.0)]
    public void Similarity_IsOneMinusLevenshteinOverTheLongerLength(string a, string b, double expected) =>
        Assert.Equal(expected, TextSimilarity.Of(a, b), 10);

    private string Train(string folder, string data, long steps, double lr)
    {
        var result = ExpertTrainer.Train(
        new ExpertTrainingRequest
        {
            Anchor = fixture.Training.AnchorFolder,
            Data = [data],
            Name = Path.GetFileName(folder),
            Out = folder,
            Owner = "audit test",
            Samples = 4,
            RouterEmbedding = fixture.Training.Anchor.RouterEmbeddingPath, // r_i = r_pub: the expert gets half of every token from the start
            // Windows of 16 tokens, a whole document with its end of text: with windows of 8, training settled at a higher
            // loss in half the seeds tried on one host (a 2-core Xeon) and gave nothing back; at 16 all of six seeds did.
            Settings = new TrainingSettings { SeqLen = 16, BatchTokens = 32, MicroBatch = 4, Steps = steps, Lr = lr, Warmup = 1, ValidationFraction = 0, CheckpointEvery = 0, RouterZLoss = 0, RouterLrScale = 0, Seed = 3 },
            TokenCache = fixture.TokenCache,
        },
        null,
        null,
        CancellationToken.None);
        LastLoss = result.Outcome.LastLoss;
        return result.Package!.Folder;
    }

    private double LastLoss { get; set; }
}
