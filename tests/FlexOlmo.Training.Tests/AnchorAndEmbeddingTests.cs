using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.Embedding;
using FlexOlmo.Training.Tokenizers;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Tests;

[Collection(TrainingCollection.Name)]
public sealed class AnchorAndEmbeddingTests(TrainingFixture fixture)
{
    [Fact]
    public void Fingerprint_IsIndependentOfShardingAndFileNames_ButNotOfContent()
    {
        using var temp = new TempDirectory("fingerprint");
        using var model = CheckpointLoader.Load(fixture.ModelFolder, CPU, ScalarType.Float32);
        CheckpointSaver.Save(model, temp.Sub("sharded"), shardBytes: 50_000);
        Assert.True(Directory.GetFiles(temp.Sub("sharded"), "model-*.safetensors").Length > 2);

        Assert.Equal(fixture.Anchor.Fingerprint, TensorFingerprint.Compute(temp.Sub("sharded")));
        using (no_grad())
        {
            model.Model.Norm.Weight[0].add_(1e-3f);
        }

        CheckpointSaver.Save(model, temp.Sub("changed"));
        Assert.NotEqual(fixture.Anchor.Fingerprint, TensorFingerprint.Compute(temp.Sub("changed")));
    }

    [Fact]
    public void Anchor_HasItsModelRouterEmbeddingAndManifest_AndDetectsTampering()
    {
        var anchor = fixture.Anchor;
        Assert.Equal("tiny-anchor", anchor.Manifest.Value.Name);
        Assert.Equal("anchor-mean-hidden", anchor.Manifest.Value.RouterEmbedding.Provenance.Method);
        var (vector, _) = RouterEmbeddingFile.Read(anchor.RouterEmbeddingPath);
        Assert.Equal(64, vector.Length);

        using var temp = new TempDirectory("tamper");
        var copy = temp.Sub("anchor");
        foreach (var file in Directory.EnumerateFiles(anchor.Folder, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(copy, Path.GetRelativePath(anchor.Folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        File.AppendAllText(Path.Combine(copy, "model", "config.json"), " ");
        var error = Assert.Throws<PackageException>(() => AnchorPackage.Open(copy));
        Assert.Contains("config.json", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not match the manifest", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OrthogonalProjection_PreservesNormsAndAngles_AndDependsOnlyOnTheSeed()
    {
        var a = Enumerable.Range(0, 10).Select(i => (float)Math.Sin(i)).ToArray();
        var b = Enumerable.Range(0, 10).Select(i => (float)Math.Cos(i)).ToArray();
        var pa = OrthogonalProjection.Project(a, 64, 7);
        var pb = OrthogonalProjection.Project(b, 64, 7);

        Assert.Equal(64, pa.Length);
        Assert.Equal(Dot(a, a), Dot(pa, pa), 4);
        Assert.Equal(Dot(a, b), Dot(pa, pb), 4);
        Assert.Equal(pa, OrthogonalProjection.Project(a, 64, 7));
        Assert.NotEqual(pa, OrthogonalProjection.Project(a, 64, 8));
    }

    [Fact]
    public void RouterEmbeddingFile_ReadsNpyJsonAndSafetensors_AndRejectsNonFiniteValues()
    {
        using var temp = new TempDirectory("vectors");
        var values = new[] { 0.5f, -1.25f, 3f };
        File.WriteAllText(temp.File("v.json"), "{\"embedding\": [0.5, -1.25, 3]}");
        var header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 3), }".PadRight(53) + "\n";
        var npy = new List<byte> { 0x93 };
        npy.AddRange(System.Text.Encoding.ASCII.GetBytes("NUMPY"));
        npy.AddRange([1, 0, (byte)header.Length, 0]);
        npy.AddRange(System.Text.Encoding.ASCII.GetBytes(header));
        npy.AddRange(values.SelectMany(v => BitConverter.GetBytes((double)v)));
        File.WriteAllBytes(temp.File("v.npy"), npy.ToArray());
        RouterEmbeddingFile.Write(temp.File("v.safetensors"), values, new RouterEmbeddingProvenance("external", 3));

        Assert.Equal(values, RouterEmbeddingFile.Read(temp.File("v.json")).Vector);
        Assert.Equal(values, RouterEmbeddingFile.Read(temp.File("v.npy")).Vector);
        var (vector, provenance) = RouterEmbeddingFile.Read(temp.File("v.safetensors"));
        Assert.Equal(values, vector);
        Assert.Equal("external", provenance!.Method);
        File.WriteAllText(temp.File("bad.json"), "[1, NaN]");
        Assert.Throws<PackageException>(() => RouterEmbeddingFile.Read(temp.File("bad.json")));
    }

    [Fact]
    public void BpeTrainer_WritesATokenizerThatRoundTripsText_WithTheRequestedVocabulary()
    {
        using var temp = new TempDirectory("bpe");
        var path = temp.File("tokenizer.json");
        BpeTrainer.Train(DataFiles.Expand([fixture.PublicData]), 300, ["<|endoftext|>"], path);
        var tokenizer = HfJsonTokenizer.Load(path);

        Assert.Equal(301, tokenizer.VocabularySize);
        var text = "the cat sees a dog. Ünïcödé ✓ 42<|endoftext|>";
        var ids = tokenizer.Encode(text);
        Assert.Equal(text, tokenizer.Decode(ids));
        Assert.Contains(300, ids);
        Assert.True(tokenizer.Encode("the cat sees a dog.").Count < "the cat sees a dog.".Length / 2, "merges should compress frequent words");
    }

    private static double Dot(float[] a, float[] b) => a.Zip(b, (x, y) => (double)x * y).Sum();
}
