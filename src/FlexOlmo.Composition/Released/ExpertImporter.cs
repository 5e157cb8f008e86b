using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using static TorchSharp.torch;

namespace FlexOlmo.Composition.Released;

/// <summary>What <c>flexolmo import-expert</c> was asked to do.</summary>
public sealed record ImportRequest
{
    /// <summary>A 2-expert flex_olmo checkpoint (such as a released Flex-DOMAIN-2x7B-1T).</summary>
    public required string Model { get; init; }

    public required string Anchor { get; init; }

    public required string Name { get; init; }

    /// <summary>The version (default: the sidecar's, when the model was exported by this tool, else 1.0.0).</summary>
    public string? Version { get; init; }

    /// <summary>Who owns the expert (default: the sidecar's owner, else "unspecified").</summary>
    public string? Owner { get; init; }

    /// <summary>An SPDX licence (default: the sidecar's, else LicenseRef-unspecified).</summary>
    public string? License { get; init; }

    public string? Description { get; init; }

    public required string Out { get; init; }
}

/// <summary>
/// <c>flexolmo import-expert</c>: turns a 2-expert flex_olmo checkpoint (the public FFN as expert 0, a domain's FFN as
/// expert 1, a [2, H] router per layer) into an expert package on its anchor, in the form train-expert writes, after
/// proving by streaming every byte that everything but expert 1 is the anchor: embeddings, attention, norms,
/// lm_head, expert 0's FFN and router row 0 (r_pub). Nothing is loaded into a model, and nothing is written unless
/// every check passes.
/// </summary>
public static class ExpertImporter
{
    public static ExpertPackage Import(ImportRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        Naming.CheckName(request.Name);
        FlexExpertPackages.CheckNew(request.Out, "--out");
        var anchor = AnchorPackage.Open(request.Anchor, verifyFiles: false); // its model is compared byte for byte below
        var anchorConfig = ModelConfig.Load(anchor.ModelFolder);
        var config = ModelConfig.Load(request.Model);
        if (!config.IsMoe)
        {
            throw new PackageException($"--model {request.Model}: is a dense {config.ModelType} model; import-expert takes a 2-expert flex_olmo checkpoint (the public expert and one domain's). A dense model is an anchor: use prepare-anchor.");
        }

        if (config.NumExperts != 2)
        {
            throw new PackageException($"--model {request.Model}: has {config.NumExperts} experts; import-expert takes one domain's 2-expert model. Split a composed model into an anchor and its experts with 'flexolmo decompose --model {request.Model} --out FOLDER'.");
        }

        // A model this tool exported carries its expert's identity and router bias in the sidecar; a released one does not.
        var entry = FlexExpertPackages.SidecarEntry(ComposedSidecar.TryLoad(request.Model), 1);
        var version = Naming.CheckVersion(request.Version ?? entry?.Version ?? "1.0.0");
        var owner = Naming.CheckText(request.Owner ?? entry?.Owner ?? "unspecified", "--owner", 200);
        var license = Naming.CheckText(request.License ?? entry?.License ?? "LicenseRef-unspecified", "--license", 100);
        PublicPart.CheckDimensions(anchorConfig, config, $"--model {request.Model}");
        using var flex = SafetensorsCheckpoint.Open(request.Model);
        using var dense = SafetensorsCheckpoint.Open(anchor.ModelFolder);
        log?.Report($"comparing {FlexExpertPackages.NameOf(request.Model)} with anchor {anchor.Manifest.Value.Name}, tensor by tensor, while its expert is copied");

        // Three streams over the same files, on both cores: the comparison with the anchor, the source's digest, and the
        // expert's copy into a temporary folder, which is stopped at the first difference and renamed only if none was found.
        using var copy = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var comparison = new BackgroundWork<string?>(
            token =>
            {
                var difference = PublicPart.FirstDifference(dense, flex, config, token);
                if (difference is not null)
                {
                    copy.Cancel();
                }

                return difference;
            },
            cancellationToken);
        using var sourceTensors = new BackgroundWork<string>(token => TensorFingerprint.Compute(flex, token), copy.Token);
        var bias = entry?.RouterBias is { } b && b.Count == config.NumHiddenLayers ? b : null;
        AtomicFile.WriteDirectory(request.Out, folder =>
        {
            FileDigest? weights = null;
            try
            {
                weights = FlexExpertPackages.WriteWeights(folder, flex, config, expert: 1, bias ?? new float[config.NumHiddenLayers], copy.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // stopped because the comparison found a difference, reported just below
            }

            if (comparison.Result is { } difference)
            {
                throw new PackageException($"--model {request.Model}: is not built on anchor {anchor.Manifest.Value.Name} ({anchor.Fingerprint}): it differs first in {difference}. Give the anchor this model was trained against. Nothing was written.");
            }

            CheckPublicRouterRows(request, anchor, flex, config);

            var manifest = new ExpertManifest(
                request.Name,
                version,
                owner,
                license,
                new AnchorReference(anchor.Fingerprint, anchor.Manifest.Value.Name),
                FlexExpertPackages.ArchitectureOf(anchorConfig),
                FlexExpertPackages.RouterProvenance(config, 1, request.Model),
                null,
                [],
                DateTimeOffset.UtcNow,
                ToolInfo.Current,
                request.Description,
                FlexExpertPackages.Origin(ExpertOrigin.Imported, request.Model, sourceTensors.Result, 1, bias is not null));
            FlexExpertPackages.SaveManifest(folder, manifest, weights!);
        });
        return ExpertPackage.Open(request.Out, verifyFiles: false);
    }

    /// <summary>Router row 0 of every layer must be the anchor's r_pub for that layer, bit for bit in the model's dtype.</summary>
    private static void CheckPublicRouterRows(ImportRequest request, AnchorPackage anchor, SafetensorsCheckpoint flex, ModelConfig config)
    {
        var publicRows = RouterEmbeddingFile.ReadRows(anchor.RouterEmbeddingPath, config.NumHiddenLayers, config.HiddenSize);
        for (var layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            var row = PublicPart.RouterRow(flex, config, layer, 0);
            using var stored = TensorBytes.Read(row.File, row.Info, row.ByteOffset, row.Shape); // [H], the model's dtype
            using var expected = tensor(publicRows[layer]).to(stored.dtype); // [H], r_pub in the same dtype
            if (!stored.eq(expected).all().item<bool>())
            {
                throw new PackageException(
                    $"--model {request.Model}: {TensorNames.Router(layer)} row 0 (the public expert's router row) is not anchor {anchor.Manifest.Value.Name}'s r_pub. " +
                    $"Prepare the anchor with its router rows taken from this model: 'flexolmo prepare-anchor --model ANCHOR_MODEL --router-embedding-from {request.Model} ...'.");
            }
        }
    }
}
