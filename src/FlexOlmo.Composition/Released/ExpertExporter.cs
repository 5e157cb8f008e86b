using FlexOlmo.Core.Configuration;
using FlexOlmo.Packages;
using FlexOlmo.Registry;

namespace FlexOlmo.Composition.Released;

/// <summary>What <c>flexolmo export-expert</c> was asked to do.</summary>
public sealed record ExportRequest
{
    public required string Package { get; init; }

    public required string Anchor { get; init; }

    public required string Out { get; init; }

    /// <summary>The largest safetensors shard (Hugging Face's 5 GB by default).</summary>
    public long ShardBytes { get; init; } = ShardSize.Default;
}

/// <summary>
/// <c>flexolmo export-expert</c>: writes an expert package on its anchor as the 2-expert flex_olmo checkpoint the
/// released Flex-DOMAIN-2x7B-1T models are (the public FFN and r_pub as expert 0, the package's FFN and router rows as
/// expert 1, top-2 without renormalisation), in the anchor's dtype, with its config and tokenizer files and Hugging
/// Face's sharding, so transformers loads it on its own. The router bias b_i has no place in a Hugging Face checkpoint:
/// it goes to the sidecar (flexolmo.json), from which import-expert takes it back.
/// </summary>
public static class ExpertExporter
{
    public static CompositionResult Export(ExportRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        FlexExpertPackages.CheckNew(request.Out, "--out");
        if (!ShardSize.InRange(request.ShardBytes))
        {
            throw new RecipeException($"--shard-size {request.ShardBytes}: must be between 1KB and 1TB.");
        }

        var anchor = AnchorPackage.Open(request.Anchor, verifyFiles: false); // verified while the tensors stream
        var anchorConfig = ModelConfig.Load(anchor.ModelFolder);
        var package = ExpertPackage.Open(request.Package, verifyFiles: false);
        var identity = ExpertIdentity.Of(package.Manifest);
        if (RevocationLedger.Default.Find(identity) is { } revocation)
        {
            throw new RegistryException(revocation.Message);
        }

        var signer = ManifestSignature.VerifyIntegrity(package.Manifest.Json, package.Manifest.Source);
        var manifestSha = FileDigest.Of(File.ReadAllBytes(Path.Combine(package.Folder, ExpertManifest.FileName)));
        var expert = Composer.OpenExpert(request.Package, package, manifestSha, new ExpertVerification(package.Manifest.Value.Reference, signer, Trusted: false), anchor, anchorConfig);
        using (expert.Weights)
        {
            var warnings = new List<string>();
            if (expert.RouterBias.Any(b => b < 0))
            {
                warnings.Add($"{package.Manifest.Value.Reference} has a trained router bias; Hugging Face checkpoints have no place for it, so it is kept in {ComposedSidecar.FileName} (transformers routes without it, as compose does by default).");
            }

            var sidecar = Composer.Sidecar(package.Manifest.Value.Name, anchor, request.Anchor, [expert], k: 2, recipeSha256: null);
            log?.Report($"writing {package.Manifest.Value.Reference} on {anchor.Manifest.Value.Name} as a 2-expert flex_olmo checkpoint to {request.Out}");
            using var verification = new BackgroundWork<bool>(
                token =>
                {
                    foreach (var file in anchor.Manifest.Value.Files)
                    {
                        token.ThrowIfCancellationRequested();
                        file.Verify(anchor.Folder);
                    }

                    foreach (var file in package.Manifest.Value.Files)
                    {
                        file.Verify(package.Folder);
                    }

                    return true;
                },
                cancellationToken);
            var (config, bytes) = Composer.Assemble(
                request.Out, anchor, anchorConfig, [expert], k: 2, Composer.DefaultDType(anchorConfig), request.ShardBytes, sidecar, request.Package, () => _ = verification.Result, cancellationToken);
            return new CompositionResult(Path.GetFullPath(request.Out), sidecar, config, bytes, warnings);
        }
    }
}
