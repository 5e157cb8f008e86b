using System.Buffers.Binary;
using System.Text;

namespace FlexOlmo.Data.Tests;

/// <summary>Data files that lie about what they hold are refused, naming the file and the mismatch.</summary>
public sealed class ShardAndDocumentTests
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

        var error = Assert.Throws<DataException>(() => TokenShard.Open(path, 2));

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NpyShard_InFortranOrder_IsRefused_AndAMatchingHeaderIsRead()
    {
        using var temp = new TempDirectory("npy-fortran");
        WriteNpy(temp.File("f.npy"), "{'descr': '<u2', 'fortran_order': True, 'shape': (10,), }", new byte[20]);
        WriteNpy(temp.File("ok.npy"), "{'descr': '<u4', 'fortran_order': False, 'shape': (10,), }", new byte[40]);

        Assert.Throws<DataException>(() => TokenShard.Open(temp.File("f.npy"), 2));
        Assert.Equal(10, TokenShard.Open(temp.File("ok.npy"), 2).Tokens);
    }

    [Fact]
    public void JsonlGz_ThatIsNotGzip_IsATrainingErrorNamingTheFile()
    {
        using var temp = new TempDirectory("gz-hostile");
        var path = temp.File("data.jsonl.gz");
        File.WriteAllText(path, "{\"text\": \"plain text, not gzip\"}\n");

        var error = Assert.Throws<DataException>(() => DocumentReader.Read(path).ToList());

        Assert.StartsWith(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("gzip", error.Message, StringComparison.Ordinal);
    }

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
