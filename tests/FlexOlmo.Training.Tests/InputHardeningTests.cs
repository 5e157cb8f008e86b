using System.Text.Json;
using FlexOlmo.Formats;
using FlexOlmo.Testing;
using FlexOlmo.Training.Experts;

namespace FlexOlmo.Training.Tests;

/// <summary>
/// train-expert never writes over an earlier run or into the anchor, asks for names and owners it can publish, and
/// keeps metrics.jsonl one row per step.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class InputHardeningTests(TrainingFixture fixture)
{
    [Fact]
    public void TrainExpert_IntoAFolderHoldingAnEarlierRun_IsRefusedWithoutResume_AndLeavesItUntouched()
    {
        using var temp = new TempDirectory("out-taken");
        var output = temp.Sub("news");
        File.WriteAllText(Path.Combine(output, "expert.json"), "an earlier expert");

        var error = Assert.Throws<TrainingException>(() => ExpertTrainer.Train(Request(output, "news"), null, null, CancellationToken.None));

        Assert.Contains("already holds files", error.Message, StringComparison.Ordinal);
        Assert.Contains("--resume", error.Message, StringComparison.Ordinal);
        Assert.Equal("an earlier expert", File.ReadAllText(Path.Combine(output, "expert.json")));
        Assert.Single(Directory.GetFileSystemEntries(output));
    }

    [Theory]
    [InlineData("")]
    [InlineData("model")]
    [InlineData("model/inside")]
    public void TrainExpert_IntoTheAnchorsFolder_IsRefused(string under)
    {
        var output = Path.Combine(fixture.AnchorFolder, under);
        var before = Directory.GetFileSystemEntries(fixture.AnchorFolder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();

        var error = Assert.Throws<TrainingException>(() => ExpertTrainer.Train(Request(output, "news"), null, null, CancellationToken.None));

        Assert.Contains("overlaps the anchor", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, Directory.GetFileSystemEntries(fixture.AnchorFolder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("news\n", "me")]
    [InlineData("news", "me\u0007")]
    [InlineData("news", "me\nyou")]
    [InlineData("news", " ")]
    public void TrainExpert_WithControlCharactersInItsNameOrOwner_IsRefusedBeforeTraining(string name, string owner)
    {
        using var temp = new TempDirectory("names");

        var error = Assert.ThrowsAny<FlexOlmoException>(() => ExpertTrainer.Train(Request(temp.File("out"), name) with { Owner = owner }, null, null, CancellationToken.None));

        Assert.Contains("not allowed", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.File("out")));
    }

    [Fact]
    public void MetricsJsonl_HasEachStepOnce_AfterResumingARunThatWasKilled()
    {
        using var temp = new TempDirectory("metrics-resume");
        var output = temp.File("news");
        using (var cancel = new CancellationTokenSource())
        {
            ExpertTrainer.Train(Request(output, "news", steps: 6), null, new StopAtStep(3, cancel), cancel.Token);
        }

        // A process killed after step 5 wrote rows 4 and 5 (and half a row) but saved no checkpoint after step 3.
        File.AppendAllText(Path.Combine(output, TrainingLoop.MetricsFile), "{\"step\": 4, \"loss\": 1}\n{\"step\": 5, \"loss\": 1}\n{\"step\": 6, \"lo");

        ExpertTrainer.Train(Request(output, "news", steps: 6) with { Resume = true }, null, null, CancellationToken.None);

        var steps = File.ReadLines(Path.Combine(output, TrainingLoop.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetInt64()).ToList();
        Assert.Equal([1L, 2, 3, 4, 5, 6], steps);
    }

    private ExpertTrainingRequest Request(string outFolder, string name, long steps = 2) => new()
    {
        Anchor = fixture.AnchorFolder,
        Data = [fixture.CountingData],
        Name = name,
        Out = outFolder,
        Owner = "test owner",
        License = "Apache-2.0",
        Samples = 20,
        Settings = TrainingFixture.SmallSettings(steps) with { CheckpointEvery = 0 },
        TokenCache = fixture.TokenCache,
    };
}
