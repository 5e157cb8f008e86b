using FlexOlmo.Packages;
using FlexOlmo.Registry;
using FlexOlmo.Testing;

namespace FlexOlmo.Composition.Tests;

/// <summary>A tiny anchor and two experts trained on it (counting, chemistry), a signing key, and a local registry holding them.</summary>
public sealed class CompositionFixture : IDisposable
{
    public CompositionFixture()
    {
        Training = new TrainingFixture();
        Counting = Training.TrainExpert("counting", Training.CountingData, steps: 25);
        Chemistry = Training.TrainExpert("chemistry", Training.ChemistryData, steps: 25);
        Keys = Training.Root.Sub("keys");
        using (SigningKey.Create(Path.Combine(Keys, "owner.key")))
        {
        }

        using (SigningKey.Create(Path.Combine(Keys, "stranger.key")))
        {
        }

        RegistryFolder = Path.Combine(Training.Root.Path, "registry");
        var registry = new ExpertRegistry(new LocalStore(RegistryFolder));
        using var owner = SigningKey.Load(Path.Combine(Keys, "owner.key"));
        registry.PublishExpertAsync(Counting.Folder, owner, null, CancellationToken.None).GetAwaiter().GetResult();
        registry.PublishExpertAsync(Chemistry.Folder, null, null, CancellationToken.None).GetAwaiter().GetResult();
        registry.PublishAnchorAsync(Training.AnchorFolder, null, null, CancellationToken.None).GetAwaiter().GetResult();
    }

    public TrainingFixture Training { get; }

    public ExpertPackage Counting { get; }

    public ExpertPackage Chemistry { get; }

    public string Keys { get; }

    public string RegistryFolder { get; }

    /// <summary>Writes a recipe file into a new folder and returns its path.</summary>
    public string Recipe(string yaml)
    {
        var folder = Training.Root.Sub("recipes/" + Guid.NewGuid().ToString("N"));
        var path = Path.Combine(folder, "recipe.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    /// <summary>A copy of an expert package with its manifest edited (weights untouched).</summary>
    public string CopyPackage(string source, Action<System.Text.Json.Nodes.JsonObject> edit)
    {
        var target = Training.Root.Sub("edited/" + Guid.NewGuid().ToString("N"));
        foreach (var file in Directory.EnumerateFiles(source).Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }

        var path = Path.Combine(target, ExpertManifest.FileName);
        var manifest = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(manifest);
        File.WriteAllText(path, manifest.ToJsonString());
        return target;
    }

    public void Dispose() => Training.Dispose();
}

[CollectionDefinition(Name)]
public sealed class CompositionCollection : ICollectionFixture<CompositionFixture>
{
    public const string Name = "composition";
}
