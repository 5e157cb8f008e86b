using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;

namespace FlexOlmo.Registry.Tests;

/// <summary>Expert packages with real manifests and safetensors files, filled with seeded random bytes (the registry moves bytes; it never runs a model).</summary>
internal static class TestPackages
{
    public const string AnchorFingerprint = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    public static string Expert(string folder, string name, string version = "1.0.0", int bytes = 4096, int seed = 1, string? anchor = null)
    {
        Directory.CreateDirectory(folder);
        var data = new byte[bytes];
        new Random(seed).NextBytes(data);
        SafetensorsWriter.WriteFile(Path.Combine(folder, ExpertTensorNames.WeightsFile), [new TensorToWrite("layers.0.mlp.gate_proj.weight", SafetensorsDType.U8, [bytes], s => s.Write(data))]);
        var manifest = new ExpertManifest(
            name,
            version,
            $"{name} owner",
            "Apache-2.0",
            new AnchorReference(anchor ?? AnchorFingerprint, "tiny"),
            new Architecture("olmo2", 64, 128, 2, 512),
            new RouterEmbeddingProvenance("anchor-mean-hidden", 64, Samples: 10),
            new TrainingRecord(10, 2560, 32, 256, 9e-4, 2, 0, "float32", "cpu"),
            [FileDigest.Compute(folder, ExpertTensorNames.WeightsFile)],
            DateTimeOffset.UtcNow,
            ToolInfo.Current,
            $"knows about {name}");
        SignedDocument<ExpertManifest>.Create(manifest, SchemaValidator.ExpertManifest, key: null).Save(Path.Combine(folder, ExpertManifest.FileName));
        return folder;
    }

    /// <summary>
    /// An anchor folder: a model (config.json and weights of seeded random bytes), r_pub and anchor.json with the true
    /// tensor fingerprint. With <paramref name="referenceModel"/> the model lives outside the anchor (prepare-anchor --reference).
    /// </summary>
    public static AnchorPackage Anchor(string folder, string name, int seed = 1, string? referenceModel = null)
    {
        Directory.CreateDirectory(folder);
        var model = referenceModel ?? Path.Combine(folder, AnchorPackage.ModelFolderName);
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "config.json"), "{\"model_type\": \"olmo2\"}");
        var data = new byte[2048];
        new Random(seed).NextBytes(data);
        SafetensorsWriter.WriteFile(Path.Combine(model, "model.safetensors"), [new TensorToWrite("model.embed_tokens.weight", SafetensorsDType.U8, [data.Length], s => s.Write(data))]);
        RouterEmbeddingFile.Write(Path.Combine(folder, AnchorPackage.RouterEmbeddingFile), [.. Enumerable.Range(0, 64).Select(i => i / 64f)], new RouterEmbeddingProvenance("anchor-mean-hidden", 64, Samples: 10));
        var files = new List<FileDigest>();
        if (referenceModel is null)
        {
            files.Add(FileDigest.Compute(folder, $"{AnchorPackage.ModelFolderName}/config.json"));
            files.Add(FileDigest.Compute(folder, $"{AnchorPackage.ModelFolderName}/model.safetensors"));
        }

        files.Add(FileDigest.Compute(folder, AnchorPackage.RouterEmbeddingFile));
        var manifest = new AnchorManifest(
            name,
            TensorFingerprint.Compute(model),
            new AnchorModel(referenceModel is null ? AnchorPackage.ModelFolderName : Path.GetFullPath(model), new Architecture("olmo2", 64, 128, 2, 512)),
            new AnchorRouterEmbedding(AnchorPackage.RouterEmbeddingFile, new RouterEmbeddingProvenance("anchor-mean-hidden", 64, Samples: 10)),
            files,
            DateTimeOffset.UtcNow,
            ToolInfo.Current);
        SignedDocument<AnchorManifest>.Create(manifest, SchemaValidator.AnchorManifest, key: null).Save(Path.Combine(folder, AnchorManifest.FileName));
        return AnchorPackage.Open(folder);
    }
}
