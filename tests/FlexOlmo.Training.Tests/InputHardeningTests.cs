using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using FlexOlmo.Formats;
using FlexOlmo.Testing;
using FlexOlmo.Training.Data;
using FlexOlmo.Training.Experts;

namespace FlexOlmo.Training.Tests;

/// <summary>
/// Data files that lie about what they hold are refused naming the file; train-expert never writes over an earlier
/// run or into the anchor, asks for names and owners it can publish, and keeps metrics.jsonl one row per step.
/// </summary>
[Collection(TrainingCollection.Name)]
public sealed class InputHardeningTests(TrainingFixture fixture)
{
    [Theory]
    [InlineData("<u2", "(9999,)", 20, "the header says 9999 ids")]
    [InlineData("<u2", "(5,)", 20, "the header says 5 ids")]
    [InlineData("<f4", "(5,)", 20, "not 'f4'")]
    [InlineData("<i8", "(5,)", 40, "not 'i8'")]
    [InlineData("<u2", "(2, 5)", 20, "one-dimensional")]
    [InlineData(">u2", "(10,)", 20, "big-endian")]
    [InlineData("<u2", "", 20, "'shape'")]
    public void NpyShard_WhoseHeaderDisagreesWithTheFile_IsRefused(string descr, string shape, int dataBytes, string problem)
    {
        using var temp = new TempDirectory("npy-hostile");
        var path = temp.File("shard.npy");
        var header = shape.Length == 0 ? $"{{'descr': '{descr}', 'fortran_order': False, }}" : $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        WriteNpy(path, header, new byte[dataBytes]);

        var error = Assert.Throws<TrainingException>(() => TokenShard.Open(path, 2));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NpyShard_InFortranOrder_IsRefused_AndAMatchingHeaderIsRead()
    {
        using var temp = new TempDirectory("npy-fortran");
        WriteNpy(temp.File("f.npy"), "{'descr': '<u2', 'fortran_order': True, 'shape': (10,), }", new byte[20]);
        WriteNpy(temp.File("ok.npy"), "{'descr': '<u4', 'fortran_order': False, 'shape': (10,), }", new byte[40]);

        Assert.Throws<TrainingException>(() => TokenShard.Open(temp.File("f.npy"), 2));
        Assert.Equal(10, TokenShard.Open(temp.File("ok.npy"), 2).Tokens);
    }

    [Fact]
    public void JsonlGz_ThatIsNotGzip_IsATrainingErrorNamingTheFile()
    {
        using var temp = new TempDirectory("gz-hostile");
        var path = temp.File("data.jsonl.gz");
        File.WriteAllText(path, "{\"text\": \"plain text, not gzip\"}\n");

        var error = Assert.Throws<TrainingException>(() => DocumentReader.Read(path).ToList());

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("gzip", error.Message, StringComparison.Ordinal);
    }

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

    private static void WriteNpy(string path, string header, byte[] data)
    {
        var padded = header + new string(' ', 63 - ((10 + header.Length) % 64)) + "\n";
        using var file = File.Create(path);
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)padded.Length);
        file.Write(length);
        file.Write(Encoding.ASCII.GetBytes(padded));
        file.Write(data);
    }
}
