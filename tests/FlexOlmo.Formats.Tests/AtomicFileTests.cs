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
