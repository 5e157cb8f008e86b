using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Formats.Tests;

public sealed class SafetensorsRoundTripTests
{
    [Fact]
    public void WriteFile_ThenOpen_ReturnsTheSameBytesShapesAndMetadata()
    {
        using var temp = new TempDirectory("st");
        var path = temp.File("a.safetensors");
        var first = Enumerable.Range(0, 6).Select(i => (byte)i).ToArray();
        var second = Enumerable.Range(0, 8).Select(i => (byte)(100 + i)).ToArray();
        SafetensorsWriter.WriteFile(
            path,
            [
                new TensorToWrite("x", SafetensorsDType.BF16, [3], s => s.Write(first)),
                new TensorToWrite("y", SafetensorsDType.F32, [1, 2], s => s.Write(second)),
            ],
            new Dictionary<string, string> { ["format"] = "pt", ["note"] = "héllo" });

        using var file = SafetensorsFile.Open(path);
        Assert.Equal("héllo", file.Header.Metadata["note"]);
        Assert.Equal(first, file.Bytes(file.Info("x"), 0, 6).ToArray());
        Assert.Equal(second, file.Bytes(file.Info("y"), 0, 8).ToArray());
        Assert.Equal([1L, 2], file.Info("y").Shape);
        Assert.Equal(SafetensorsDType.BF16, file.Info("x").DType);
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp"));
    }

    [Fact]
    public void WriteCheckpoint_ShardsBySizeAndWritesAnIndex_ThatOpensAsOneCheckpoint()
    {
        using var temp = new TempDirectory("st");
        var tensors = Enumerable.Range(0, 5)
            .Select(i => new TensorToWrite($"t{i}", SafetensorsDType.U8, [100], s => s.Write(Enumerable.Repeat((byte)i, 100).ToArray())))
            .ToList();
        var written = SafetensorsWriter.WriteCheckpoint(temp.Path, tensors, maxShardBytes: 250);

        Assert.Equal(4, written.Count); // three shards of <= 250 bytes and the index
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Path);
        Assert.Equal(["t0", "t1", "t2", "t3", "t4"], checkpoint.Names);
        var (file, info) = checkpoint.Locate("t3");
        Assert.All(file.Bytes(info, 0, 100).ToArray(), b => Assert.Equal(3, b));
    }

    [Fact]
    public void WriteFile_LeavesNoFile_WhenATensorWritesTheWrongByteCount()
    {
        using var temp = new TempDirectory("st");
        var path = temp.File("bad.safetensors");
        Assert.Throws<SafetensorsException>(() => SafetensorsWriter.WriteFile(path, [new TensorToWrite("x", SafetensorsDType.F32, [2], s => s.Write(new byte[4]))]));
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }
}
