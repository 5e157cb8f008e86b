using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Formats.Tests;

/// <summary>The writer refuses what it cannot write correctly, with the format's own error type.</summary>
public sealed class SafetensorsWriterTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void WriteCheckpoint_WithAShardSizeBelowOneByte_IsASafetensorsError(long shardBytes)
    {
        using var temp = new TempDirectory("st-shard");

        var error = Assert.Throws<SafetensorsException>(() => SafetensorsWriter.WriteCheckpoint(temp.Path, [new TensorToWrite("x", SafetensorsDType.U8, [1], s => s.WriteByte(1))], shardBytes));

        Assert.Contains("at least 1 byte", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void WriteFile_WithATensorNamedTwice_IsRefused()
    {
        using var temp = new TempDirectory("st-dup");

        Assert.Throws<SafetensorsException>(() => SafetensorsWriter.WriteFile(temp.File("a.safetensors"), [
            new TensorToWrite("x", SafetensorsDType.U8, [1], s => s.WriteByte(1)),
            new TensorToWrite("x", SafetensorsDType.U8, [1], s => s.WriteByte(2)),
        ]));

        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void WriteCheckpoint_BelowTheShardSize_WritesOneFileWithoutAnIndex()
    {
        using var temp = new TempDirectory("st-one");

        var files = SafetensorsWriter.WriteCheckpoint(temp.Path, [new TensorToWrite("x", SafetensorsDType.F32, [4], s => s.Write(new byte[16]))], maxShardBytes: 1000);

        Assert.Equal(["model.safetensors"], files.Select(Path.GetFileName));
        using var checkpoint = SafetensorsCheckpoint.Open(temp.Path);
        Assert.Equal(["x"], checkpoint.Names);
    }
}
