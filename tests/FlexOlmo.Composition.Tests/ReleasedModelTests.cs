using System.Text.Json.Nodes;
using FlexOlmo.Composition.Released;
using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Testing;
using FlexOlmo.Training.Anchors;
using Xunit.Abstractions;

namespace FlexOlmo.Composition.Tests;

/// <summary>
/// import-expert, export-expert, decompose and prepare-anchor --router-embedding-from: round trips bit for bit on
/// every tensor, on the trained fixture and on the checkpoints transformers wrote (../shared/fixtures/hf-reference).
/// </summary>
[Collection(CompositionCollection.Name)]
public sealed class ReleasedModelTests(CompositionFixture fixture, ITestOutputHelper output)
{
    private static string HfTiny => Path.Combine(TestPaths.HfReference, "flexolmo-tiny");

    private static string HfTinyOptOut => Path.Combine(TestPaths.HfReference, "flexolmo-tiny-optout");

    [Fact]
    public async Task Decompose_OfAComposedModel_GivesBackTheAnchorAndEachExpertBitForBit()
    {
        var composed = await ComposeAsync(fixture.Training.AnchorFolder, fixture.Counting.Folder, fixture.Chemistry.Folder);
        var parts = Decompose(composed);

        Assert.Equal(fixture.Training.Anchor.Fingerprint, parts.Anchor.Fingerprint);
        Assert.Equal(fixture.Training.Anchor.Manifest.Value.Name, parts.Anchor.Manifest.Value.Name);
        Assert.Equal(TensorFingerprint.Compute(fixture.Training.Anchor.ModelFolder), TensorFingerprint.Compute(parts.Anchor.ModelFolder));
        Assert.Equal(
            RouterEmbeddingFile.ReadRows(fixture.Training.Anchor.RouterEmbeddingPath, 2, 64),
            RouterEmbeddingFile.ReadRows(parts.Anchor.RouterEmbeddingPath, 2, 64));
        Assert.Equal(["counting", "chemistry"], parts.Experts.Select(e => e.Manifest.Value.Name));
        foreach (var (original, decomposed) in new[] { fixture.Counting, fixture.Chemistry }.Zip(parts.Experts))
        {
            AssertSameTensors(original.WeightsPath, decomposed.WeightsPath);
            var (m, d) = (original.Manifest.Value, decomposed.Manifest.Value);
            Assert.Equal((m.Name, m.Version, m.Owner, m.License, m.Anchor.Fingerprint), (d.Name, d.Version, d.Owner, d.License, d.Anchor.Fingerprint));
            Assert.Equal((ExpertOrigin.Decomposed, ExpertOrigin.BiasFromSidecar), (d.Origin!.Kind, d.Origin.RouterBias));
            Assert.Equal(FileDigest.Compute(composed, ModelConfig.FileName).Sha256, d.Origin.SourceConfigSha256);
            Assert.Null(d.Origin.SourceTensorsSha256); // the anchor's fingerprint names the public part, the weights digest the expert
            Assert.Null(d.Training);
        }

        // The parts are a package and an anchor like any other: ModelFolder and compose open them with their checks.
        var model = ModelConfig.Load(parts.Anchor.ModelFolder);
        Assert.Equal(ModelConfig.Olmo2, model.ModelType);
        Assert.True(File.Exists(Path.Combine(parts.Anchor.ModelFolder, "tokenizer.json")));
        _ = AnchorPackage.Open(parts.Anchor.Folder, verifyFiles: true);
        Assert.All(parts.Experts, e => ExpertPackage.Open(e.Folder, verifyFiles: true));
    }

    [Fact]
    public async Task Compose_OfTheDecomposedParts_EqualsTheOriginalComposedModel()
    {
        var composed = await ComposeAsync(fixture.Training.AnchorFolder, fixture.Counting.Folder, fixture.Chemistry.Folder);
        var parts = Decompose(composed);

        var again = await ComposeAsync(parts.Anchor.Folder, parts.Experts[0].Folder, parts.Experts[1].Folder);

        AssertSameTensors(composed, again);
        Assert.Equal(ComposedSidecar.TryLoad(composed)!.Experts.Select(e => e.RouterBias), ComposedSidecar.TryLoad(again)!.Experts.Select(e => e.RouterBias));
    }

    [Fact]
    public async Task Decompose_OfTheTransformersModel_ThenComposeWithoutExpert3_IsTheTransformersOptOutModelBitForBit()
    {
        var parts = Decompose(HfTiny);

        Assert.Equal(["expert-1", "expert-2", "expert-3"], parts.Experts.Select(e => e.Manifest.Value.Name));
        Assert.Equal("flexolmo-tiny-anchor", parts.Anchor.Manifest.Value.Name);
        Assert.Equal(2, parts.Anchor.Manifest.Value.RouterEmbedding.Provenance.Layers); // its random routers differ by layer
        Assert.All(parts.Experts, e => Assert.Equal(ExpertOrigin.NoBias, e.Manifest.Value.Origin!.RouterBias));

        var all = await ComposeAsync(parts.Anchor.Folder, [.. parts.Experts.Select(e => e.Folder)]);
        var withoutThree = await ComposeAsync(parts.Anchor.Folder, parts.Experts[0].Folder, parts.Experts[1].Folder);

        AssertSameTensors(HfTiny, all);
        AssertSameTensors(HfTinyOptOut, withoutThree);
        using var optOut = SafetensorsCheckpoint.Open(withoutThree);
        Assert.DoesNotContain(optOut.Names, n => n.Contains(".experts.3.", StringComparison.Ordinal));
    }

    [Fact]
    public void Decompose_OfADenseModel_IsRefused()
    {
        using var temp = new TempDirectory("decompose");
        var error = Assert.Throws<PackageException>(() => Decompose(fixture.Training.Anchor.ModelFolder, temp.File("out")));

        Assert.Contains("dense", error.Message, StringComparison.Ordinal);
        Assert.Contains("prepare-anchor", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "out")));
    }

    [Fact]
    public async Task Decompose_WhenThePublicPartIsNotTheSidecarsAnchor_IsRefusedAndWritesNothing()
    {
        var composed = await ComposeAsync(fixture.Training.AnchorFolder, fixture.Counting.Folder);
        var sidecarPath = Path.Combine(composed, ComposedSidecar.FileName);
        var sidecar = JsonNode.Parse(File.ReadAllText(sidecarPath))!.AsObject();
        sidecar["anchor_fingerprint"] = "sha256:" + new string('0', 64);
        File.WriteAllText(sidecarPath, sidecar.ToJsonString());
        using var temp = new TempDirectory("decompose");

        var error = Assert.Throws<PackageException>(() => Decompose(composed, temp.File("out")));

        Assert.Contains("was composed from anchor", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path)); // neither the folder nor its temporary sibling
    }

    [Fact]
    public void ExportThenImport_GivesBackThePackageBitForBit_FromShards()
    {
        using var temp = new TempDirectory("export");
        var exported = ExpertExporter.Export(
            new ExportRequest { Package = fixture.Counting.Folder, Anchor = fixture.Training.AnchorFolder, Out = temp.File("model"), ShardBytes = 200_000 },
            null,
            CancellationToken.None);

        var config = ModelConfig.Load(exported.Folder);
        Assert.Equal((ModelConfig.FlexOlmo, 2, 2, false), (config.ModelType, config.NumExperts, config.NumExpertsPerTok, config.NormTopkProb));
        Assert.True(File.Exists(Path.Combine(exported.Folder, SafetensorsCheckpoint.IndexFileName)), "a model over the shard size has an index");
        Assert.True(File.Exists(Path.Combine(exported.Folder, "tokenizer.json")));
        Assert.Equal(ComposedSidecar.TryLoad(exported.Folder)!.Experts[1].RouterBias, BiasOf(fixture.Counting));
        output.WriteLine($"bias {string.Join(", ", BiasOf(fixture.Counting))}; warnings: {string.Join(" | ", exported.Warnings)}");

        var imported = ExpertImporter.Import(
            new ImportRequest { Model = exported.Folder, Anchor = fixture.Training.AnchorFolder, Name = "counting", Out = Path.Combine(temp.Path, "package") },
            null,
            CancellationToken.None);

        AssertSameTensors(fixture.Counting.WeightsPath, imported.WeightsPath);
        var (m, i) = (fixture.Counting.Manifest.Value, imported.Manifest.Value);
        Assert.Equal((m.Name, m.Version, m.Owner, m.License, m.Anchor.Fingerprint), (i.Name, i.Version, i.Owner, i.License, i.Anchor.Fingerprint));
        Assert.Equal((ExpertOrigin.Imported, 1, ExpertOrigin.BiasFromSidecar), (i.Origin!.Kind, i.Origin.SourceExpert, i.Origin.RouterBias));
        Assert.Equal(FileDigest.Compute(exported.Folder, ModelConfig.FileName).Sha256, i.Origin.SourceConfigSha256);
        Assert.Equal(TensorFingerprint.Compute(exported.Folder), i.Origin.SourceTensorsSha256);
    }

    [Fact]
    public async Task Import_OfAReleasedStyleModel_InEitherExpertLayout_WritesWhatTrainExpertWrites()
    {
        using var temp = new TempDirectory("import");
        var released = ReleasedStyleModel(temp);
        var fused = FusedCopy(released, temp.File("fused"));

        var fromPerExpert = Import(released, temp, "counting-released");
        var fromFused = Import(fused, temp, "counting-fused");

        using var written = SafetensorsCheckpoint.Open(fromPerExpert.WeightsPath);
        using var trained = SafetensorsCheckpoint.Open(fixture.Counting.WeightsPath);
        Assert.Equal(trained.Names.Order(), written.Names.Order());
        var biases = Enumerable.Range(0, 2).Select(ExpertTensorNames.RouterBias).ToHashSet();
        foreach (var name in trained.Names.Where(n => !biases.Contains(n)))
        {
            Assert.True(Slice(trained, name).SameAs(Slice(written, name)), name);
        }

        Assert.All(Enumerable.Range(0, 2), l => Assert.Equal(0f, BitConverter.ToSingle(Slice(written, ExpertTensorNames.RouterBias(l)).File.Bytes(Slice(written, ExpertTensorNames.RouterBias(l)).Info, 0, 4))));
        AssertSameTensors(fromPerExpert.WeightsPath, fromFused.WeightsPath);
        var manifest = fromPerExpert.Manifest.Value;
        Assert.Equal((ExpertOrigin.NoBias, "unspecified", "1.0.0"), (manifest.Origin!.RouterBias, manifest.Owner, manifest.Version));
        Assert.Equal("router-row", manifest.RouterEmbedding.Method);

        // It composes and evaluates like any other package.
        var composed = await ComposeAsync(fixture.Training.AnchorFolder, fromPerExpert.Folder, fixture.Chemistry.Folder);
        Assert.Equal(3, ModelConfig.Load(composed).NumExperts);
    }

    [Fact]
    public void Import_OfAModelWithOneChangedAttentionWeight_IsRefusedNamingTheTensor()
    {
        using var temp = new TempDirectory("import");
        var released = ReleasedStyleModel(temp);
        FlipOneByte(released, "model.layers.1.self_attn.k_proj.weight", at: 4 * 77);

        var error = Assert.Throws<PackageException>(() => Import(released, temp, "tampered"));

        output.WriteLine(error.Message);
        Assert.Contains("model.layers.1.self_attn.k_proj.weight", error.Message, StringComparison.Ordinal);
        Assert.Contains("differs first in", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(temp.Path, "tampered")));
    }

    [Fact]
    public void Import_WhenRouterRowZeroIsNotTheAnchorsRPub_IsRefusedPointingToPrepareAnchor()
    {
        using var temp = new TempDirectory("import");
        var released = ReleasedStyleModel(temp);
        FlipOneByte(released, TensorNames.Router(0), at: 8);

        var error = Assert.Throws<PackageException>(() => Import(released, temp, "other-rpub"));

        Assert.Contains("row 0", error.Message, StringComparison.Ordinal);
        Assert.Contains("--router-embedding-from", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_OfAModelWithFourExperts_IsRefusedPointingToDecompose()
    {
        using var temp = new TempDirectory("import");
        var parts = Decompose(HfTiny);

        var error = Assert.Throws<PackageException>(() => ExpertImporter.Import(
            new ImportRequest { Model = HfTiny, Anchor = parts.Anchor.Folder, Name = "x", Out = temp.File("x") },
            null,
            CancellationToken.None));

        Assert.Contains("has 4 experts", error.Message, StringComparison.Ordinal);
        Assert.Contains("flexolmo decompose", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_OfADenseModel_IsRefused()
    {
        using var temp = new TempDirectory("import");

        var error = Assert.Throws<PackageException>(() => Import(fixture.Training.Anchor.ModelFolder, temp, "dense"));

        Assert.Contains("dense olmo2 model", error.Message, StringComparison.Ordinal);
        Assert.Contains("prepare-anchor", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Import_OntoAnAnchorOfOtherDimensions_IsRefusedFromTheConfigs()
    {
        using var temp = new TempDirectory("import");
        var parts = Decompose(HfTiny);
        var twoExpert = await ComposeAsync(parts.Anchor.Folder, parts.Experts[0].Folder);

        var error = Assert.Throws<CheckpointException>(() => Import(twoExpert, temp, "x"));

        Assert.Contains("vocab 512", error.Message, StringComparison.Ordinal);
        Assert.Contains("vocab 336", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrepareAnchor_WithRouterEmbeddingFrom_TakesEachLayersPublicRowAndChecksThePublicPart()
    {
        using var temp = new TempDirectory("anchor");
        var parts = Decompose(HfTiny);
        var twoExpert = await ComposeAsync(parts.Anchor.Folder, parts.Experts[1].Folder);
        File.Delete(Path.Combine(twoExpert, ComposedSidecar.FileName)); // as released

        var anchor = AnchorBuilder.Prepare(new AnchorRequest { Model = parts.Anchor.ModelFolder, RouterEmbeddingFrom = twoExpert, Out = temp.File("a"), Name = "tiny" }, null, CancellationToken.None);

        Assert.Equal(parts.Anchor.Fingerprint, anchor.Fingerprint);
        var rows = RouterEmbeddingFile.ReadRows(anchor.RouterEmbeddingPath, 2, 64);
        Assert.NotEqual(rows[0], rows[1]);
        using (var hf = SafetensorsCheckpoint.Open(HfTiny))
        {
            Assert.Equal(PublicPart.RouterRows(hf, ModelConfig.Load(HfTiny), 0), rows);
        }

        // The package imported against this anchor is the decomposed expert, bit for bit.
        var imported = ExpertImporter.Import(new ImportRequest { Model = twoExpert, Anchor = anchor.Folder, Name = "expert-2", Out = temp.File("p") }, null, CancellationToken.None);
        AssertSameTensors(parts.Experts[1].WeightsPath, imported.WeightsPath);

        FlipOneByte(twoExpert, "model.layers.0.mlp.experts.0.up_proj.weight", at: 4 * 5);
        var error = Assert.Throws<FlexOlmo.Training.TrainingException>(() => AnchorBuilder.Prepare(
            new AnchorRequest { Model = parts.Anchor.ModelFolder, RouterEmbeddingFrom = twoExpert, Out = temp.File("b"), Name = "tiny" }, null, CancellationToken.None));
        Assert.Contains("model.layers.0.mlp.up_proj.weight", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A 2-expert model as the released Flex-DOMAIN-2x7B are: per-expert tensors, no sidecar.</summary>
    private string ReleasedStyleModel(TempDirectory temp)
    {
        var exported = ExpertExporter.Export(new ExportRequest { Package = fixture.Counting.Folder, Anchor = fixture.Training.AnchorFolder, Out = temp.File("released") }, null, CancellationToken.None);
        File.Delete(Path.Combine(exported.Folder, ComposedSidecar.FileName));
        return exported.Folder;
    }

    private ExpertPackage Import(string model, TempDirectory temp, string name) => ExpertImporter.Import(
        new ImportRequest { Model = model, Anchor = fixture.Training.AnchorFolder, Name = name, Out = Path.Combine(temp.Path, name) }, null, CancellationToken.None);

    private DecomposeResult Decompose(string model, string? outFolder = null) =>
        Decomposer.Decompose(new DecomposeRequest { Model = model, Out = outFolder ?? Path.Combine(fixture.Training.Root.Sub("decomposed"), Guid.NewGuid().ToString("N")) }, null, CancellationToken.None);

    private async Task<string> ComposeAsync(string anchor, params string[] experts)
    {
        var recipe = fixture.Recipe($$"""
            name: released
            anchor: { source: {{anchor}} }
            experts:
            {{string.Join("\n", experts.Select(e => $"  - source: {e}"))}}
            experts_per_token: 2
            """);
        var result = await Composer.ComposeAsync(Recipe.Load(recipe), Path.Combine(Path.GetDirectoryName(recipe)!, "composed"), null, null, CancellationToken.None);
        return result.Folder;
    }

    private static float[] BiasOf(ExpertPackage package)
    {
        using var weights = SafetensorsCheckpoint.Open(package.WeightsPath);
        return Enumerable.Range(0, 2).Select(l =>
        {
            var slice = Slice(weights, ExpertTensorNames.RouterBias(l));
            return BitConverter.ToSingle(slice.File.Bytes(slice.Info, 0, 4));
        }).ToArray();
    }

    private static TensorSlice Slice(SafetensorsCheckpoint checkpoint, string name)
    {
        var (file, info) = checkpoint.Locate(name);
        return TensorSlice.Whole(file, info);
    }

    /// <summary>Every tensor of both checkpoints: the same names, dtypes, shapes and bytes.</summary>
    private static void AssertSameTensors(string expected, string actual)
    {
        using var a = SafetensorsCheckpoint.Open(expected);
        using var b = SafetensorsCheckpoint.Open(actual);
        Assert.Equal(a.Names.Order(StringComparer.Ordinal), b.Names.Order(StringComparer.Ordinal));
        foreach (var name in a.Names)
        {
            Assert.True(Slice(a, name).SameAs(Slice(b, name)), $"{name} differs between {expected} and {actual}");
        }
    }

    private static void FlipOneByte(string model, string tensor, long at)
    {
        string path;
        long begin;
        using (var checkpoint = SafetensorsCheckpoint.Open(model))
        {
            var (file, info) = checkpoint.Locate(tensor);
            (path, begin) = (file.Path, info.Begin);
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var length = new byte[8];
        stream.ReadExactly(length);
        stream.Position = 8 + BitConverter.ToInt64(length) + begin + at; // header length, header, then the data
        var value = stream.ReadByte();
        stream.Position -= 1;
        stream.WriteByte((byte)(value ^ 0x01));
    }

    /// <summary>The same model with its experts in the fused layout (transformers v5 with save_original_format=False).</summary>
    private static string FusedCopy(string model, string target)
    {
        var config = ModelConfig.Load(model);
        using var source = SafetensorsCheckpoint.Open(model);
        var tensors = new List<TensorToWrite>();
        foreach (var name in source.Names.Where(n => !n.Contains(".mlp.experts.", StringComparison.Ordinal)))
        {
            var slice = Slice(source, name);
            tensors.Add(new TensorToWrite(name, slice.DType, slice.Shape, slice.CopyTo));
        }

        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            var layer = l;
            var gate = Slice(source, TensorNames.Expert(l, 0, "gate_proj"));
            tensors.Add(new TensorToWrite(TensorNames.FusedGateUp(l), gate.DType, [2, 2 * config.IntermediateSize, config.HiddenSize], stream =>
            {
                for (var e = 0; e < 2; e++)
                {
                    Slice(source, TensorNames.Expert(layer, e, "gate_proj")).CopyTo(stream);
                    Slice(source, TensorNames.Expert(layer, e, "up_proj")).CopyTo(stream);
                }
            }));
            tensors.Add(new TensorToWrite(TensorNames.FusedDown(l), gate.DType, [2, config.HiddenSize, config.IntermediateSize], stream =>
            {
                for (var e = 0; e < 2; e++)
                {
                    Slice(source, TensorNames.Expert(layer, e, "down_proj")).CopyTo(stream);
                }
            }));
        }

        SafetensorsWriter.WriteCheckpoint(target, tensors, long.MaxValue);
        File.Copy(Path.Combine(model, ModelConfig.FileName), Path.Combine(target, ModelConfig.FileName));
        return target;
    }
}
