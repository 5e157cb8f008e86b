namespace FlexOlmo.Packages.Tests;

public sealed class RouterEmbeddingFileTests
{
    private static readonly RouterEmbeddingProvenance Provenance = new("router-row", 4, Source: "test");

    [Fact]
    public void WriteRows_EveryLayerTheSame_WritesOneVectorThatEveryLayerReads()
    {
        using var folder = new TempDirectory("rows");
        var path = folder.File("r.safetensors");
        float[] row = [0.5f, -1f, 2f, 0f];

        var written = RouterEmbeddingFile.WriteRows(path, [row, [.. row], [.. row]], Provenance);

        Assert.Null(written.Layers);
        Assert.Equal(row, RouterEmbeddingFile.Read(path).Vector);
        Assert.All(RouterEmbeddingFile.ReadRows(path, 3, 4), r => Assert.Equal(row, r));
    }

    [Fact]
    public void WriteRows_LayersDiffer_KeepsEachLayersRowBitForBit()
    {
        using var folder = new TempDirectory("rows");
        var path = folder.File("r.safetensors");
        float[][] rows = [[1f, 2f, 3f, 4f], [1f, 2f, 3f, -0f]]; // -0 and 0 differ in bits, so the layers differ

        var written = RouterEmbeddingFile.WriteRows(path, rows, Provenance);
        var read = RouterEmbeddingFile.ReadRows(path, 2, 4);

        Assert.Equal(2, written.Layers);
        Assert.True(float.IsNegative(read[1][3]));
        Assert.Equal(rows, read);
    }

    [Theory]
    [InlineData(3, 4, "[3,4]")]
    [InlineData(2, 8, "[2,8]")]
    public void ReadRows_OfAnotherModelsShape_IsRefusedNamingBoth(int layers, int width, string wanted)
    {
        using var folder = new TempDirectory("rows");
        var path = folder.File("r.safetensors");
        RouterEmbeddingFile.WriteRows(path, [[1f, 2f, 3f, 4f], [4f, 3f, 2f, 1f]], Provenance);

        var error = Assert.Throws<PackageException>(() => RouterEmbeddingFile.ReadRows(path, layers, width));

        Assert.Contains("[2,4]", error.Message, StringComparison.Ordinal);
        Assert.Contains(wanted, error.Message, StringComparison.Ordinal);
    }
}
