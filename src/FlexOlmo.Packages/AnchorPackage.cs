namespace FlexOlmo.Packages;

/// <summary>
/// An anchor folder: anchor.json, the model (in "model/" or an absolute path it refers to) and the public router
/// embedding r_pub (router_embedding.safetensors).
/// </summary>
public sealed class AnchorPackage
{
    public const string ModelFolderName = "model";
    public const string RouterEmbeddingFile = "router_embedding.safetensors";

    private AnchorPackage(string folder, SignedDocument<AnchorManifest> manifest)
    {
        Folder = folder;
        Manifest = manifest;
    }

    public string Folder { get; }

    public SignedDocument<AnchorManifest> Manifest { get; }

    public string Fingerprint => Manifest.Value.Fingerprint;

    /// <summary>The model folder (inside the anchor, or the absolute path it refers to).</summary>
    public string ModelFolder => Path.IsPathRooted(Manifest.Value.Model.Path) ? Manifest.Value.Model.Path : Path.Combine(Folder, Manifest.Value.Model.Path);

    public string RouterEmbeddingPath => Path.Combine(Folder, Manifest.Value.RouterEmbedding.Path);

    /// <summary>
    /// Writes anchor.json into a folder that already holds the model (or whose manifest refers to one) and the router
    /// embedding file; <paramref name="modelFiles"/> are the model's files with their digests (none for a reference).
    /// </summary>
    public static void WriteManifest(
        string folder, string name, string fingerprint, string modelPath, Architecture architecture, RouterEmbeddingProvenance provenance, IEnumerable<FileDigest> modelFiles, string? description)
    {
        var manifest = new AnchorManifest(
            Naming.CheckName(name, "anchor name"),
            fingerprint,
            new AnchorModel(modelPath, architecture),
            new AnchorRouterEmbedding(RouterEmbeddingFile, provenance),
            [.. modelFiles, FileDigest.Compute(folder, RouterEmbeddingFile)],
            DateTimeOffset.UtcNow,
            ToolInfo.Current,
            description);
        SignedDocument<AnchorManifest>.Create(manifest, SchemaValidator.AnchorManifest, key: null).Save(Path.Combine(folder, AnchorManifest.FileName));
    }

    public static bool IsPackage(string folder) => File.Exists(Path.Combine(folder, AnchorManifest.FileName));

    public static AnchorPackage Open(string folder, bool verifyFiles = true)
    {
        var manifestPath = Path.Combine(folder, AnchorManifest.FileName);
        if (!File.Exists(manifestPath))
        {
            throw new PackageException($"{folder}: has no {AnchorManifest.FileName}; not an anchor (make one with 'flexolmo prepare-anchor').");
        }

        var manifest = SignedDocument<AnchorManifest>.Load(manifestPath, SchemaValidator.AnchorManifest);
        var relative = manifest.Value.RouterEmbedding.Path;
        if (Path.IsPathRooted(relative) || relative.Contains("..", StringComparison.Ordinal))
        {
            throw new PackageException($"{manifestPath}: router_embedding.path must be a file inside the anchor folder.");
        }

        var anchor = new AnchorPackage(folder, manifest);
        if (!Directory.Exists(anchor.ModelFolder))
        {
            throw new PackageException($"{manifestPath}: its model folder {anchor.ModelFolder} does not exist.");
        }

        if (verifyFiles)
        {
            foreach (var file in manifest.Value.Files)
            {
                file.Verify(folder);
            }
        }

        return anchor;
    }
}
