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
}
