using System.IO.Compression;
using System.Text;
using FlexOlmo.Testing;

namespace FlexOlmo.Data.Tests;

[Collection(DataCollection.Name)]
public sealed class DataPipelineTests(TrainingFixture fixture)
{
    [Fact]
    public void TokenCache_TokenisesOnce_AndReusesTheCacheOnTheNextRun()
    {
        using var temp = new TempDirectory("cache");
        var file = SyntheticCorpus.WriteJsonl(temp.File("d.jsonl"), SyntheticCorpus.Counting(20, 9));
        var cache = new TokenCache(temp.Sub("c"), new TextEncoding(fixture.Tokenizer, 320));
        var first = new List<string>();
        var second = new List<string>();

        var a = cache.Prepare([file], 2, new SyncProgress(first.Add));
        var b = cache.Prepare([file], 2, new SyncProgress(second.Add));

        Assert.Single(first);
        Assert.Empty(second);
        Assert.Equal(a[0].Tokens, b[0].Tokens);
        Assert.Equal(20, b[0].Documents);
    }

    [Fact]
    public void Documents_EndWithEos_AndTextFormatsAgree()
    {
        using var temp = new TempDirectory("formats");
        var texts = new[] { "alpha beta", "gamma delta" };
        var jsonl = SyntheticCorpus.WriteJsonl(temp.File("a.jsonl"), texts);
        var gz = temp.File("b.jsonl.gz");
        using (var stream = new GZipStream(File.Create(gz), CompressionLevel.Fastest))
        {
            stream.Write(File.ReadAllBytes(jsonl));
        }

        File.WriteAllText(temp.File("c.txt"), "alpha beta");
        File.WriteAllText(temp.File("d.txt"), "gamma delta");
        var cache = new TokenCache(temp.Sub("cache"), new TextEncoding(fixture.Tokenizer, 320));

        using var fromJsonl = new TokenDataset(cache.Prepare([jsonl], 2), 336);
        using var fromGz = new TokenDataset(cache.Prepare([gz], 2), 336);
        using var fromText = new TokenDataset(cache.Prepare(DataFiles.Expand([Path.Combine(temp.Path, "*.txt")]), 2), 336);

        var expected = texts.SelectMany(t => fixture.Tokenizer.Encode(t).Select(i => (long)i).Append(320)).ToArray();
        Assert.Equal(expected, Read(fromJsonl));
        Assert.Equal(expected, Read(fromGz));
        Assert.Equal(expected, Read(fromText));
    }

    [Fact]
    public void TokenShard_ReadsNumpyHeaderedAndRawFiles_AndRejectsIdsOutsideTheVocabulary()
    {
        using var temp = new TempDirectory("shards");
        ushort[] ids = [5, 6, 7, 320, 8, 9, 320];
        var raw = temp.File("tokens.bin");
        File.WriteAllBytes(raw, ids.SelectMany(i => BitConverter.GetBytes(i)).ToArray());
        var npy = temp.File("tokens.npy");
        var header = "{'descr': '<u2', 'fortran_order': False, 'shape': (7,), }";
        header = header.PadRight(64 - 10 - 1) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange(Encoding.ASCII.GetBytes("NUMPY"));
        bytes.AddRange([1, 0, (byte)header.Length, 0]);
        bytes.AddRange(Encoding.ASCII.GetBytes(header));
        bytes.AddRange(ids.SelectMany(i => BitConverter.GetBytes(i)));
        File.WriteAllBytes(npy, bytes.ToArray());

        var cache = new TokenCache(temp.Sub("c"), new TextEncoding(fixture.Tokenizer, 320));
        using var fromRaw = new TokenDataset(cache.Prepare([raw], 2), 336);
        using var fromNpy = new TokenDataset(cache.Prepare([npy], 4), 336);
        Assert.Equal(ids.Select(i => (long)i), Read(fromRaw));
        Assert.Equal(ids.Select(i => (long)i), Read(fromNpy));

        using var tooSmall = new TokenDataset(cache.Prepare([raw], 2), 8);
        var error = Assert.Throws<DataException>(() => Read(tooSmall));
        Assert.Contains("outside the vocabulary", error.Message, StringComparison.Ordinal);

        File.WriteAllBytes(temp.File("odd.bin"), [1, 2, 3]);
        Assert.Contains("whole number", Assert.Throws<DataException>(() => cache.Prepare([temp.File("odd.bin")], 2)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DataFiles_ExpandsFoldersAndGlobs_AndNamesWhatMatchedNothing()
    {
        using var temp = new TempDirectory("globs");
        var sub = temp.Sub("nested/deeper");
        File.WriteAllText(Path.Combine(sub, "a.txt"), "x");
        File.WriteAllText(temp.File("b.jsonl"), "{\"text\":\"y\"}");
        File.WriteAllText(temp.File("ignored.csv"), "z");

        Assert.Equal(2, DataFiles.Expand([temp.Path]).Count);
        Assert.Single(DataFiles.Expand([Path.Combine(temp.Path, "**", "*.txt")]));
        var error = Assert.Throws<DataException>(() => DataFiles.Expand([Path.Combine(temp.Path, "*.npy")]));
        Assert.Contains("matched no data files", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InstanceSplit_IsDeterministic_AndKeepsValidationOutOfTraining()
    {
        var a = new InstanceSplit(100, 0.1, 3);
        var b = new InstanceSplit(100, 0.1, 3);
        var train = Enumerable.Range(0, 90).Select(i => a.TrainInstanceAt(i)).ToHashSet();

        Assert.Equal(10, a.Validation.Count);
        Assert.Equal(a.Validation, b.Validation);
        Assert.Equal(90, train.Count);
        Assert.Empty(train.Intersect(a.Validation));
        Assert.Equal(Enumerable.Range(0, 200).Select(i => a.TrainInstanceAt(i)), Enumerable.Range(0, 200).Select(i => b.TrainInstanceAt(i)));
        Assert.NotEqual(Enumerable.Range(0, 90).Select(i => a.TrainInstanceAt(i)), Enumerable.Range(90, 90).Select(i => a.TrainInstanceAt(i)));
    }

    private static long[] Read(TokenDataset data)
    {
        var tokens = new long[data.TotalTokens];
        data.Read(0, tokens);
        return tokens;
    }

    private sealed class SyncProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }
}
