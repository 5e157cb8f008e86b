using System.Buffers.Binary;
using System.Text;
using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Formats.Tests;

/// <summary>Hostile and broken files: each gets a typed error that names the file, never a crash or a huge allocation.</summary>
public sealed class SafetensorsMalformedTests : IDisposable
{
    private readonly TempDirectory _temp = new("malformed");

    public static TheoryData<string, string, int, string> Headers => new()
    {
        { "not-json", "{not json", 0, "not valid" },
        { "array", "[1,2]", 0, "JSON object" },
        { "duplicate", """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""", 1, "appears twice" },
        { "unknown-dtype", """{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}""", 1, "unknown dtype" },
        { "size-mismatch", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4, "needs 8 bytes" },
        { "past-end", """{"a":{"dtype":"U8","shape":[64],"data_offsets":[0,64]}}""", 8, "past the end" },
        { "overlap", """{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}""", 6, "overlaps" },
        { "gap", """{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}""", 6, "gap" },
        { "trailing", """{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}""", 5, "trailing bytes" },
        { "negative", """{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}""", 2, "non-negative" },
        { "overflow", """{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}""", 8, "overflows" },
        { "unknown-field", """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}""", 1, "unknown field" },
        { "missing-field", """{"a":{"dtype":"U8","data_offsets":[0,1]}}""", 1, "lacks shape" },
        { "metadata-type", """{"__metadata__":{"k":1}}""", 0, "must be a string" },
        { "deep", "{\"__metadata__\":" + string.Concat(Enumerable.Repeat("{\"k\":", 500)) + "1" + new string('}', 501), 0, "must be a string" },
        { "three-offsets", """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}""", 1, "more than 2" },
    };

    [Theory]
    [MemberData(nameof(Headers))]
    public void Open_RejectsWithTypedErrorNamingTheFile_ForBadHeader(string name, string header, int dataBytes, string expected)
    {
        var path = Write(name, Encoding.UTF8.GetBytes(header), new byte[dataBytes]);
        var error = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_Rejects_WhenFileIsShorterThanTheLengthPrefix()
    {
        var path = _temp.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("fewer than the 8-byte", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ulong.MaxValue, "more than")]
    [InlineData(50_000_000UL, "only")]
    [InlineData(0UL, "empty")]
    public void Open_RejectsWithoutAllocating_WhenHeaderLengthLies(ulong claimed, string expected)
    {
        var path = _temp.File($"claims-{claimed}.safetensors");
        var bytes = new byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimed);
        File.WriteAllBytes(path, bytes);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000, "must not allocate what the header claims");
    }

    [Fact]
    public void Open_RejectsInvalidUtf8InTheHeader()
    {
        var header = Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"\u00e9\":1}");
        var bad = header.Select(b => b == 0xC3 ? (byte)0xFF : b).ToArray();
        var path = Write("utf8", bad, new byte[1]);
        Assert.Contains("not valid", Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path)).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../escape.safetensors", "plain .safetensors file name")]
    [InlineData("/etc/passwd", "plain .safetensors file name")]
    [InlineData("notes.txt", "plain .safetensors file name")]
    public void OpenIndex_RejectsShardNamesOutsideTheFolder(string shard, string expected)
    {
        var folder = _temp.Sub("index-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(Path.Combine(folder, SafetensorsCheckpoint.IndexFileName), $$$"""{"weight_map":{"a":"{{{shard}}}"}}""");
        var error = Assert.Throws<SafetensorsException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenIndex_Rejects_WhenAShardLacksAMappedTensor()
    {
        var folder = _temp.Sub("index-missing");
        SafetensorsWriter.WriteFile(Path.Combine(folder, "model-00001-of-00001.safetensors"), [new TensorToWrite("a", SafetensorsDType.U8, [1], s => s.WriteByte(1))]);
        File.WriteAllText(Path.Combine(folder, SafetensorsCheckpoint.IndexFileName), """{"weight_map":{"a":"model-00001-of-00001.safetensors","b":"model-00001-of-00001.safetensors"}}""");
        var error = Assert.Throws<SafetensorsException>(() => SafetensorsCheckpoint.Open(folder));
        Assert.Contains("has no such tensor", error.Message, StringComparison.Ordinal);
    }

    private string Write(string name, byte[] header, byte[] data)
    {
        var path = _temp.File(name + ".safetensors");
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose() => _temp.Dispose();
}
