namespace FlexOlmo.Formats.Tests;

/// <summary>Readers see nothing or the whole file; a failed write changes nothing; temporaries of dead writers are cleaned up.</summary>
public sealed class AtomicFileTests
{
    [Fact]
    public void Write_ThatFails_LeavesTheTargetAsItWas_AndNoTemporary()
    {
        using var temp = new TempDirectory("atomic-fail");
        var path = temp.File("config.json");
        File.WriteAllText(path, "old");

        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, stream =>
        {
            stream.Write("new, but half"u8);
            throw new InvalidOperationException("the writer failed");
        }));

        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal(["config.json"], Directory.GetFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void Write_OfManyMegabytes_KeepsEveryByteInOrder()
    {
        using var temp = new TempDirectory("atomic");
        var path = temp.File("big.bin");
        var piece = new byte[(3 << 20) + 7]; // an odd size, not a multiple of the stream's 1 MiB buffer
        const int pieces = 30;

        AtomicFile.Write(path, stream =>
        {
            for (var i = 0; i < pieces; i++)
            {
                Array.Fill(piece, (byte)i);
                stream.Write(piece);
            }
        });

        Assert.Equal((long)piece.Length * pieces, new FileInfo(path).Length);
        using var read = File.OpenRead(path);
        var back = new byte[piece.Length];
        for (var i = 0; i < pieces; i++)
        {
            read.ReadExactly(back);
            Assert.True(back.All(b => b == (byte)i), $"piece {i}");
        }
    }

    [Fact]
    public void HashingStream_DigestOfWhatWasWritten_EqualsTheFilesSha256()
    {
        using var temp = new TempDirectory("atomic");
        var path = temp.File("t.safetensors");

        var digest = FlexOlmo.Formats.Safetensors.SafetensorsWriter.WriteFileHashed(
            path, [new FlexOlmo.Formats.Safetensors.TensorToWrite("x", FlexOlmo.Formats.Safetensors.SafetensorsDType.U8, [1000], s => s.Write(Enumerable.Range(0, 1000).Select(i => (byte)i).ToArray()))]);

        Assert.Equal(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)), digest);
    }

    [Fact]
    public void WriteDirectory_RefusesAnExistingTarget_AndBuildsUnderATemporaryName()
    {
        using var temp = new TempDirectory("atomic-dir");
        var target = temp.File("out");
        string? seenWhileBuilding = null;

        AtomicFile.WriteDirectory(target, folder =>
        {
            seenWhileBuilding = folder;
            Assert.False(Directory.Exists(target)); // invisible until complete
            File.WriteAllText(Path.Combine(folder, "a.txt"), "a");
        });
        var error = Assert.Throws<FlexOlmoException>(() => AtomicFile.WriteDirectory(target, _ => { }));

        Assert.StartsWith(".out.", Path.GetFileName(seenWhileBuilding), StringComparison.Ordinal);
        Assert.Equal("a", File.ReadAllText(Path.Combine(target, "a.txt")));
        Assert.Contains("already exists", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TemporariesOfProcessesThatNoLongerRun_AreRemoved_ThoseOfLiveOnesAreKept()
    {
        using var temp = new TempDirectory("atomic-abandoned");
        var target = temp.File("model");
        var dead = temp.File($".model.build-2000000000-{Guid.NewGuid():N}.tmp");
        var live = temp.File($".model.build-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        var foreign = temp.File(".model.not-ours.tmp");
        Directory.CreateDirectory(dead);
        Directory.CreateDirectory(live);
        File.WriteAllText(foreign, "someone else's");

        var fresh = AtomicFile.TemporarySibling(target, "build");

        Assert.False(Directory.Exists(dead));
        Assert.True(Directory.Exists(live));
        Assert.True(File.Exists(foreign));
        Assert.Contains($"-{Environment.ProcessId}-", Path.GetFileName(fresh), StringComparison.Ordinal);
    }
}
