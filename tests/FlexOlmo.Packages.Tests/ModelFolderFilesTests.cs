using FlexOlmo.Formats.Safetensors;

namespace FlexOlmo.Packages.Tests;

/// <summary>The one rule of what in a model folder belongs to the model.</summary>
public sealed class ModelFolderFilesTests
{
    [Fact]
    public void List_GivesConfigWeightsAndTokenizerFiles_NeverLogsDataOrSecrets()
    {
        using var temp = new TempDirectory("model-files");
        File.WriteAllText(temp.File("config.json"), "{}");
        SafetensorsWriter.WriteCheckpoint(temp.Path, [
            new TensorToWrite("a", SafetensorsDType.U8, [600], s => s.Write(new byte[600])),
            new TensorToWrite("b", SafetensorsDType.U8, [600], s => s.Write(new byte[600])),
        ], maxShardBytes: 700);
        foreach (var name in new[] { "tokenizer.json", "generation_config.json", "metrics.jsonl", "secrets.txt", "notes.json", "train.jsonl.gz" })
        {
            File.WriteAllText(temp.File(name), "x");
        }

        Directory.CreateDirectory(temp.File("checkpoint"));

        var files = ModelFolderFiles.List(temp.Path);

        Assert.Equal(
            ["config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json"],
            files);
    }

    [Fact]
    public void List_OfAFolderWithoutConfig_SaysItIsNoModel()
    {
        using var temp = new TempDirectory("model-files-empty");

        var error = Assert.Throws<PackageException>(() => ModelFolderFiles.List(temp.Path));

        Assert.Contains("config.json", error.Message, StringComparison.Ordinal);
    }
}
