using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;

namespace FlexOlmo.Composition.Released;

/// <summary>What <c>flexolmo decompose</c> was asked to do.</summary>
public sealed record DecomposeRequest
{
    /// <summary>A flex_olmo checkpoint: one this tool composed, or a released one such as FlexOlmo-7x7B-1T.</summary>
    public required string Model { get; init; }

    public required string Out { get; init; }

    /// <summary>The largest safetensors shard of the anchor's model (Hugging Face's 5 GB by default).</summary>
    public long ShardBytes { get; init; } = ShardSize.Default;
}

/// <summary>What decompose wrote: the anchor, then one package per expert in router order (1..E-1).</summary>
public sealed record DecomposeResult(string Folder, AnchorPackage Anchor, IReadOnlyList<ExpertPackage> Experts, IReadOnlyList<string> Warnings);

/// <summary>
/// <c>flexolmo decompose</c>: splits a composed FlexOlmo model into what it was composed from: FOLDER/anchor (a
/// dense OLMo-2 model made of the public part, with each layer's public router row as r_pub) and
/// FOLDER/experts/NAME, one package per expert (its FFNs and router rows, byte for byte), named by the model's
/// sidecar when it has one, else expert-N. Everything streams tensor by tensor; the folder appears only when whole.
/// Composing the parts again gives back the model bit for bit, and leaving an expert out of that recipe gives the
/// model with that expert physically absent.
/// </summary>
public static class Decomposer
{
    public const string AnchorFolder = "anchor";
    public const string ExpertsFolder = "experts";

    public static DecomposeResult Decompose(DecomposeRequest request, IProgress<string>? log, CancellationToken cancellationToken)
    {
        FlexExpertPackages.CheckNew(request.Out, "--out");
        if (!ShardSize.InRange(request.ShardBytes))
        {
            throw new RecipeException($"--shard-size {request.ShardBytes}: must be between 1KB and 1TB.");
        }

        var config = ModelConfig.Load(request.Model);
        if (!config.IsMoe)
        {
            throw new PackageException($"--model {request.Model}: is a dense {config.ModelType} model, which has no experts to split; it can be an anchor as it is: 'flexolmo prepare-anchor --model {request.Model} ...'.");
        }

        var warnings = new List<string>();
        var sidecar = ComposedSidecar.TryLoad(request.Model);
        if (sidecar is not null && sidecar.Experts.Count != config.NumExperts)
        {
            warnings.Add($"{Path.Combine(request.Model, ComposedSidecar.FileName)} lists {sidecar.Experts.Count} experts but the model has {config.NumExperts}; it was ignored, and the experts are named expert-N.");
            sidecar = null;
        }

        var names = Enumerable.Range(1, config.NumExperts - 1).Select(e => FlexExpertPackages.SidecarEntry(sidecar, e)?.Name ?? ComposedSidecar.DefaultName(e)).ToList();
        foreach (var name in names)
        {
            Naming.CheckName(name, $"expert name in {ComposedSidecar.FileName}");
        }

        if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
        {
            throw new PackageException($"{Path.Combine(request.Model, ComposedSidecar.FileName)}: names the experts {string.Join(", ", names)}; each package needs its own name.");
        }

        var modelName = FlexExpertPackages.NameOf(request.Model);
        var anchorName = sidecar?.AnchorName ?? DefaultAnchorName(modelName);
        using var flex = SafetensorsCheckpoint.Open(request.Model);

        // The experts' weights stream on the other core while the anchor is written; the manifests follow once the
        // anchor's fingerprint is known.
        var biases = Enumerable.Range(0, config.NumExperts).Select(e => FlexExpertPackages.SidecarEntry(sidecar, e)?.RouterBias is { } b && b.Count == config.NumHiddenLayers ? b : null).ToList();
        AtomicFile.WriteDirectory(request.Out, folder =>
        {
            using var weights = new BackgroundWork<FileDigest[]>(
                token => Enumerable.Range(1, config.NumExperts - 1)
                    .Select(e => FlexExpertPackages.WriteWeights(Path.Combine(folder, ExpertsFolder, names[e - 1]), flex, config, e, biases[e] ?? new float[config.NumHiddenLayers], token))
                    .ToArray(),
                cancellationToken);
            log?.Report($"writing anchor {anchorName} (the public part of {modelName}) and {config.NumExperts - 1} experts");
            var anchor = WriteAnchor(Path.Combine(folder, AnchorFolder), anchorName, request, flex, config, sidecar, cancellationToken);
            var files = weights.Result;
            for (var e = 1; e < config.NumExperts; e++)
            {
                var entry = FlexExpertPackages.SidecarEntry(sidecar, e);
                var manifest = new ExpertManifest(
                    names[e - 1],
                    entry?.Version is { } v && Naming.IsValidVersion(v) ? v : "1.0.0",
                    Naming.CheckText(entry?.Owner ?? "unspecified", $"owner of expert {e} in {ComposedSidecar.FileName}", 200),
                    Naming.CheckText(entry?.License ?? "LicenseRef-unspecified", $"licence of expert {e} in {ComposedSidecar.FileName}", 100),
                    new AnchorReference(anchor.Fingerprint, anchorName),
                    FlexExpertPackages.ArchitectureOf(config),
                    FlexExpertPackages.RouterProvenance(config, e, request.Model),
                    null,
                    [],
                    DateTimeOffset.UtcNow,
                    ToolInfo.Current,
                    $"Expert {e} of {modelName}" + (sidecar?.RouterTuning is not null ? ", with the router rows tuned after composition" : string.Empty) + ".",
                    FlexExpertPackages.Origin(ExpertOrigin.Decomposed, request.Model, null, e, biases[e] is not null));
                FlexExpertPackages.SaveManifest(Path.Combine(folder, ExpertsFolder, names[e - 1]), manifest, files[e - 1]);
            }
        });
        var full = Path.GetFullPath(request.Out);
        return new DecomposeResult(
            full,
            AnchorPackage.Open(Path.Combine(full, AnchorFolder), verifyFiles: false),
            names.Select(n => ExpertPackage.Open(Path.Combine(full, ExpertsFolder, n), verifyFiles: false)).ToList(),
            warnings);
    }

    /// <summary>
    /// FOLDER/anchor: the public part as a dense OLMo-2 checkpoint (its config, tokenizer and generation files), r_pub
    /// from router row 0 (one row per layer when they differ) and anchor.json. Its fingerprint is computed from the
    /// source bytes as they are written, and must be the one the sidecar recorded.
    /// </summary>
    private static AnchorPackage WriteAnchor(string folder, string name, DecomposeRequest request, SafetensorsCheckpoint flex, ModelConfig config, ComposedSidecar? sidecar, CancellationToken cancellationToken)
    {
        var modelFolder = Directory.CreateDirectory(Path.Combine(folder, AnchorPackage.ModelFolderName)).FullName;
        var tensors = PublicPart.Tensors(flex, config).Select(t => new TensorToWrite(t.DenseName, t.Slice.DType, t.Slice.Shape, stream =>
        {
            cancellationToken.ThrowIfCancellationRequested();
            t.Slice.CopyTo(stream);
        })).ToList();
        using var fingerprint = new BackgroundWork<string>(token => TensorFingerprint.Compute(tensors, token), cancellationToken);
        var digests = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        SafetensorsWriter.WriteCheckpoint(modelFolder, tensors, request.ShardBytes, new Dictionary<string, string> { ["format"] = "pt" }, digests: digests);
        var dense = PublicPart.DenseConfig(config);
        dense.Save(modelFolder);
        foreach (var file in ModelFolderFiles.CompanionsIn(request.Model))
        {
            File.Copy(Path.Combine(request.Model, file), Path.Combine(modelFolder, file));
        }

        var computed = fingerprint.Result;
        if (sidecar is not null && sidecar.AnchorFingerprint != computed)
        {
            throw new PackageException(
                $"--model {request.Model}: its public part has fingerprint {computed}, but it was composed from anchor {sidecar.AnchorName} {sidecar.AnchorFingerprint}: " +
                "its shared tensors were changed after composition (or it was composed in another dtype than its anchor's), so it cannot give back that anchor. Nothing was written.");
        }

        var provenance = RouterEmbeddingFile.WriteRows(
            Path.Combine(folder, AnchorPackage.RouterEmbeddingFile),
            PublicPart.RouterRows(flex, config, 0),
            new RouterEmbeddingProvenance("router-row", config.HiddenSize, Source: $"row 0 of each layer's router of {FlexExpertPackages.NameOf(request.Model)}"));
        var files = ModelFolderFiles.List(modelFolder).Select(f =>
        {
            var relative = $"{AnchorPackage.ModelFolderName}/{f}";
            return digests.TryGetValue(Path.Combine(modelFolder, f), out var sha256) ? FileDigest.Written(folder, relative, sha256) : FileDigest.Compute(folder, relative);
        }).ToList();
        AnchorPackage.WriteManifest(
            folder, name, computed, AnchorPackage.ModelFolderName, FlexExpertPackages.ArchitectureOf(config), provenance, files, $"The public part of {FlexExpertPackages.NameOf(request.Model)}, split off by decompose.");
        return AnchorPackage.Open(folder, verifyFiles: false);
    }

    /// <summary>A valid anchor name from a model folder's name ("FlexOlmo-7x7B-1T" gives "flexolmo-7x7b-1t-anchor").</summary>
    private static string DefaultAnchorName(string modelName)
    {
        var cleaned = new string(modelName.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-').ToArray()).Trim('.', '-', '_');
        var candidate = (cleaned.Length > 57 ? cleaned[..57] : cleaned) + "-anchor";
        return Naming.IsValidName(candidate) ? candidate : "anchor";
    }
}
