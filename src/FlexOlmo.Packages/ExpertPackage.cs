namespace FlexOlmo.Packages;

/// <summary>An expert package folder: expert.json (written last) and the files it lists, expert.safetensors first.</summary>
public sealed class ExpertPackage
{
    private ExpertPackage(string folder, SignedDocument<ExpertManifest> manifest)
    {
        Folder = folder;
        Manifest = manifest;
    }

    public string Folder { get; }

    public SignedDocument<ExpertManifest> Manifest { get; }

    public string WeightsPath => Path.Combine(Folder, ExpertTensorNames.WeightsFile);

    public static bool IsPackage(string folder) => File.Exists(Path.Combine(folder, ExpertManifest.FileName));

    /// <summary>Reads and validates expert.json; with <paramref name="verifyFiles"/>, checks every listed file's size and SHA-256.</summary>
    public static ExpertPackage Open(string folder, bool verifyFiles = true)
    {
        var manifestPath = Path.Combine(folder, ExpertManifest.FileName);
        if (!File.Exists(manifestPath))
        {
            throw new PackageException($"{folder}: has no {ExpertManifest.FileName}; not an expert package (train one with 'flexolmo train-expert').");
        }

        var manifest = SignedDocument<ExpertManifest>.Load(manifestPath, SchemaValidator.ExpertManifest);
        if (manifest.Value.Files.All(f => f.Path != ExpertTensorNames.WeightsFile))
        {
            throw new PackageException($"{manifestPath}: 'files' does not list {ExpertTensorNames.WeightsFile}.");
        }

        var package = new ExpertPackage(folder, manifest);
        if (verifyFiles)
        {
            foreach (var file in manifest.Value.Files)
            {
                file.Verify(folder);
            }
        }

        return package;
    }
}
