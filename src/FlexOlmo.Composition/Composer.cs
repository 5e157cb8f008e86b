using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Native;
using FlexOlmo.Formats;
using FlexOlmo.Formats.Safetensors;
using FlexOlmo.Packages;
using FlexOlmo.Registry;
using static TorchSharp.torch;

namespace FlexOlmo.Composition;

/// <summary>What compose wrote, and what the user must hear about it (unverified experts, unchecked revocations).</summary>
public sealed record CompositionResult(string Folder, ComposedSidecar Sidecar, ModelConfig Config, long Bytes, IReadOnlyList<string> Warnings);

/// <summary>
/// <c>flexolmo compose --recipe</c>: checks every piece of a recipe (anchor, trust, revocation, pins, dimensions) and
/// writes a Hugging Face flex_olmo checkpoint: expert 0 is the anchor's FFN with r_pub, experts 1..n follow the
/// recipe with their FFNs and router rows. Tensors stream one at a time from the sources into the shards, so memory
/// does not grow with the model; the folder is built under a temporary name and renamed when complete.
/// </summary>
public static class Composer
{
    public static async Task<CompositionResult> ComposeAsync(Recipe recipe, string? outFolder, string? connectionString, IProgress<string>? log, CancellationToken cancellationToken)
    {
        var target = outFolder ?? (recipe.Output?.Path is { } p ? recipe.Resolve(p) : throw recipe.Document.Error("/output", "no output folder: give --out DIR or output.path in the recipe."));
        var trusted = LoadTrustedKeys(recipe);
        var toVerify = new List<(string Folder, FileDigest File, string Pointer)>();
        var work = AtomicFile.TemporarySibling(target, "compose-work");
        var warnings = new List<string>();
        var experts = new List<ResolvedExpert>();
        try
        {
            var needsRegistry = !recipe.IsFolder(recipe.Anchor.Source) || recipe.Experts.Any(e => !recipe.IsFolder(e.Source));
            ExpertRegistry? registry = null;
            if (needsRegistry || recipe.Registry is not null)
            {
                try
                {
                    registry = new ExpertRegistry(await RegistryConnection.OpenAsync(recipe.Registry is { } r && !r.Contains("://", StringComparison.Ordinal) ? recipe.Resolve(r) : recipe.Registry, connectionString, cancellationToken).ConfigureAwait(false));
                }
                catch (RegistryException e)
                {
                    throw recipe.Document.Error("/registry", e.Message);
                }
            }
            else
            {
                warnings.Add("No registry is set, so revocations were checked only against those this machine has seen. Set 'registry' in the recipe to check the owners' current decisions.");
            }

            var anchor = await ResolveAnchorAsync(recipe, registry, work, toVerify, log, cancellationToken).ConfigureAwait(false);
            var anchorConfig = ModelConfig.Load(anchor.ModelFolder);
            for (var i = 0; i < recipe.Experts.Count; i++)
            {
                var expert = await ResolveExpertAsync(recipe, i, anchor, anchorConfig, registry, trusted, work, toVerify, log, cancellationToken).ConfigureAwait(false);
                experts.Add(expert);
                if (expert.Verification.Warning is { } warning)
                {
                    warnings.Add(warning);
                }
            }

            var k = recipe.ExpertsPerToken ?? Math.Min(experts.Count + 1, 4);
            var dtype = recipe.Dtype ?? DefaultDType(anchorConfig);
            var sidecar = Sidecar(recipe.Name, anchor, recipe.Anchor.Source, experts, k, recipe.Sha256);
            log?.Report($"writing {experts.Count + 1} experts (top-{k}, {dtype}) to {target}");
            // Source files are checked against their manifests on another core while the tensors stream; the output
            // folder is renamed into place only if every check passed.
            var verification = Task.Run(() => Verify(recipe, toVerify, cancellationToken), cancellationToken);
            var (config, bytes) = Assemble(target, anchor, anchorConfig, experts, k, dtype, recipe.ShardBytes(), sidecar, recipe.Document.Path, () => verification.GetAwaiter().GetResult(), cancellationToken);
            return new CompositionResult(Path.GetFullPath(target), sidecar, config, bytes, warnings);
        }
        finally
        {
            // The experts' memory-mapped checkpoints are released on every path, errors and cancellation included.
            foreach (var expert in experts)
            {
                expert.Weights.Dispose();
            }

            AtomicFile.TryDeleteDirectory(work);
            foreach (var key in trusted)
            {
                key.Dispose();
            }
        }
    }

    private static void Verify(Recipe recipe, List<(string Folder, FileDigest File, string Pointer)> files, CancellationToken cancellationToken)
    {
        foreach (var (folder, file, pointer) in files)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                file.Verify(folder);
            }
            catch (PackageException e)
            {
                throw recipe.Document.Error(pointer, e.Message);
            }
        }
    }

    private static List<SigningKey> LoadTrustedKeys(Recipe recipe)
    {
        var keys = new List<SigningKey>();
        for (var i = 0; i < (recipe.TrustedKeys?.Count ?? 0); i++)
        {
            try
            {
                keys.Add(SigningKey.Load(recipe.Resolve(recipe.TrustedKeys![i])));
            }
            catch (PackageException e)
            {
                throw recipe.Document.Error($"/trusted_keys/{i}", e.Message);
            }
        }

        return keys;
    }

    private static async Task<AnchorPackage> ResolveAnchorAsync(
        Recipe recipe, ExpertRegistry? registry, string work, List<(string, FileDigest, string)> toVerify, IProgress<string>? log, CancellationToken cancellationToken)
    {
        AnchorPackage anchor;
        try
        {
            if (recipe.IsFolder(recipe.Anchor.Source))
            {
                anchor = AnchorPackage.Open(recipe.Resolve(recipe.Anchor.Source), verifyFiles: false);
                toVerify.AddRange(anchor.Manifest.Value.Files.Select(f => (anchor.Folder, f, "/anchor/source")));
                if (Path.IsPathRooted(anchor.Manifest.Value.Model.Path))
                {
                    // The anchor refers to a model elsewhere: its files are pinned by the fingerprint, not by file hashes.
                    var actual = TensorFingerprint.Compute(anchor.ModelFolder);
                    if (actual != anchor.Fingerprint)
                    {
                        throw new PackageException($"{anchor.ModelFolder}: its tensors have fingerprint {actual}, not the anchor's {anchor.Fingerprint}; the model changed since prepare-anchor.");
                    }
                }
            }
            else
            {
                if (registry is null)
                {
                    throw new RegistryException($"'{recipe.Anchor.Source}' is a registry reference but no registry is set.");
                }

                log?.Report($"pulling anchor {recipe.Anchor.Source} from {registry.Store.Location}");
                anchor = await registry.PullAnchorAsync(recipe.Anchor.Source, Path.Combine(work, "anchor"), null, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (FlexOlmoException e) when (e is not RecipeException)
        {
            throw recipe.Document.Error("/anchor/source", e.Message);
        }

        if (recipe.Anchor.Fingerprint is { } pin && pin != anchor.Fingerprint)
        {
            throw recipe.Document.Error("/anchor/fingerprint", $"the recipe pins {pin}, but {recipe.Anchor.Source} has fingerprint {anchor.Fingerprint}.");
        }

        return anchor;
    }

    private static async Task<ResolvedExpert> ResolveExpertAsync(
        Recipe recipe, int index, AnchorPackage anchor, ModelConfig anchorConfig, ExpertRegistry? registry, IReadOnlyCollection<SigningKey> trusted, string work,
        List<(string, FileDigest, string)> toVerify, IProgress<string>? log, CancellationToken cancellationToken)
    {
        var source = recipe.Experts[index].Source;
        var pointer = $"/experts/{index}/source";
        ExpertPackage package;
        string manifestSha;
        ExpertVerification verification;
        try
        {
            if (recipe.IsFolder(source))
            {
                package = ExpertPackage.Open(recipe.Resolve(source), verifyFiles: false);
                toVerify.AddRange(package.Manifest.Value.Files.Select(f => (package.Folder, f, pointer)));
                manifestSha = FileDigest.Of(File.ReadAllBytes(Path.Combine(package.Folder, ExpertManifest.FileName)));
                var signer = trusted.Count > 0 ? ManifestSignature.Verify(package.Manifest.Json, trusted, package.Manifest.Source) : ManifestSignature.VerifyIntegrity(package.Manifest.Json, package.Manifest.Source);
                verification = new ExpertVerification(package.Manifest.Value.Reference, signer, trusted.Count > 0);
                var identity = ExpertIdentity.Of(package.Manifest);
                var revocation = registry is not null
                    ? await registry.CheckRevocationAsync(identity, cancellationToken).ConfigureAwait(false)
                    : RevocationLedger.Default.Find(identity);
                if (revocation is not null)
                {
                    throw new RegistryException(revocation.Message);
                }
            }
            else
            {
                if (registry is null)
                {
                    throw new RegistryException($"'{source}' is a registry reference but no registry is set.");
                }

                log?.Report($"pulling expert {source} from {registry.Store.Location}");
                var (name, requested) = Naming.ParseReference(source);
                var version = await registry.ResolveVersionAsync(name, requested, cancellationToken).ConfigureAwait(false);
                var pulled = await registry.PullExpertAsync($"{name}@{version}", Path.Combine(work, $"expert-{index}"), trusted, null, cancellationToken).ConfigureAwait(false);
                package = pulled.Package;
                verification = pulled.Verification;
                manifestSha = FileDigest.Of(File.ReadAllBytes(Path.Combine(package.Folder, ExpertManifest.FileName)));
            }
        }
        catch (FlexOlmoException e) when (e is not RecipeException)
        {
            throw recipe.Document.Error(pointer, e.Message);
        }

        if (recipe.Experts[index].Sha256 is { } pin && pin != manifestSha)
        {
            throw recipe.Document.Error($"/experts/{index}/sha256", $"the recipe pins {pin}, but {package.Manifest.Value.Reference}'s manifest has sha256 {manifestSha}.");
        }

        try
        {
            return OpenExpert(source, package, manifestSha, verification, anchor, anchorConfig);
        }
        catch (FlexOlmoException e) when (e is not RecipeException)
        {
            throw recipe.Document.Error(pointer, e.Message);
        }
    }

    /// <summary>
    /// An expert package checked against the anchor (fingerprint, dimensions, every tensor and shape) with its weights
    /// opened; the caller owns (and disposes) them.
    /// </summary>
    internal static ResolvedExpert OpenExpert(string source, ExpertPackage package, string manifestSha, ExpertVerification verification, AnchorPackage anchor, ModelConfig anchorConfig)
    {
        var manifest = package.Manifest.Value;
        if (manifest.Anchor.Fingerprint != anchor.Fingerprint)
        {
            throw new PackageException($"{manifest.Reference} was trained against anchor {manifest.Anchor.Name} {manifest.Anchor.Fingerprint}, not this anchor {anchor.Manifest.Value.Name} {anchor.Fingerprint}.");
        }

        var a = manifest.Architecture;
        if (a.HiddenSize != anchorConfig.HiddenSize || a.IntermediateSize != anchorConfig.IntermediateSize || a.NumHiddenLayers != anchorConfig.NumHiddenLayers || a.VocabSize != anchorConfig.VocabSize)
        {
            throw new PackageException($"{manifest.Reference} has dimensions {a.NumHiddenLayers}x{a.HiddenSize}/{a.IntermediateSize} (vocab {a.VocabSize}); the anchor has {anchorConfig.NumHiddenLayers}x{anchorConfig.HiddenSize}/{anchorConfig.IntermediateSize} (vocab {anchorConfig.VocabSize}).");
        }

        var weights = SafetensorsCheckpoint.Open(package.WeightsPath);
        try
        {
            CheckExpertTensors(manifest, weights, anchorConfig);
            var bias = Enumerable.Range(0, anchorConfig.NumHiddenLayers).Select(l =>
            {
                var (file, info) = weights.Locate(ExpertTensorNames.RouterBias(l));
                using var tensor = TensorBytes.Read(file, info, 0, info.Shape);
                return tensor.to(ScalarType.Float32).item<float>();
            }).ToArray();
            var resolved = new ResolvedExpert(source, package, weights, manifestSha, verification, bias);
            weights = null; // the resolved expert owns it now (its caller disposes it on every path)
            return resolved;
        }
        finally
        {
            weights?.Dispose();
        }
    }

    /// <summary>The dtype a composed model is written in unless the recipe says: the anchor's bfloat16, else float32.</summary>
    internal static string DefaultDType(ModelConfig anchorConfig) => anchorConfig.StorageDType is "bfloat16" ? "bfloat16" : "float32";

    /// <summary>The sidecar of a composed model: the experts in router order with owners, licences, digests and signers.</summary>
    internal static ComposedSidecar Sidecar(string name, AnchorPackage anchor, string anchorSource, IReadOnlyList<ResolvedExpert> experts, int k, string? recipeSha256) => new(
        name,
        anchor.Manifest.Value.Name,
        anchor.Fingerprint,
        [
            new SidecarExpert(0, ComposedSidecar.PublicName, null, $"anchor {anchor.Manifest.Value.Name}", "anchor", anchorSource, null, null, null),
            .. experts.Select((e, i) => e.ToSidecar(i + 1)),
        ],
        k,
        recipeSha256,
        DateTimeOffset.UtcNow,
        ToolInfo.Current);

    /// <summary>
    /// Writes a composed flex_olmo model folder (weights, config, the anchor's tokenizer files, the sidecar) under a
    /// temporary name and renames it into place; <paramref name="beforeRename"/> may still refuse it.
    /// </summary>
    internal static (ModelConfig Config, long Bytes) Assemble(
        string target, AnchorPackage anchor, ModelConfig anchorConfig, IReadOnlyList<ResolvedExpert> experts, int k, string dtype, long shardBytes, ComposedSidecar sidecar, string source,
        Action? beforeRename, CancellationToken cancellationToken)
    {
        var config = anchorConfig with
        {
            ModelType = ModelConfig.FlexOlmo,
            NumExperts = experts.Count + 1,
            NumExpertsPerTok = k,
            NormTopkProb = false,
            StorageDType = dtype,
        };
        config.Validate(source);
        long bytes = 0;
        AtomicFile.WriteDirectory(target, folder =>
        {
            bytes = WriteCheckpoint(folder, config, anchor, experts, dtype, shardBytes, cancellationToken);
            beforeRename?.Invoke();
            config.Save(folder);
            foreach (var file in ModelFolderFiles.CompanionsIn(anchor.ModelFolder))
            {
                File.Copy(Path.Combine(anchor.ModelFolder, file), Path.Combine(folder, file));
            }

            sidecar.Save(folder);
        });
        return (config, bytes);
    }

    private static void CheckExpertTensors(ExpertManifest manifest, SafetensorsCheckpoint weights, ModelConfig config)
    {
        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            var expected = new (string Name, long[] Shape)[]
            {
                (ExpertTensorNames.Ffn(l, "gate_proj"), [config.IntermediateSize, config.HiddenSize]),
                (ExpertTensorNames.Ffn(l, "up_proj"), [config.IntermediateSize, config.HiddenSize]),
                (ExpertTensorNames.Ffn(l, "down_proj"), [config.HiddenSize, config.IntermediateSize]),
                (ExpertTensorNames.RouterEmbedding(l), [config.HiddenSize]),
                (ExpertTensorNames.RouterBias(l), [1]),
            };
            foreach (var (name, shape) in expected)
            {
                if (!weights.Contains(name) || !weights.Locate(name).Info.Shape.SequenceEqual(shape))
                {
                    throw new PackageException($"{manifest.Reference}: {ExpertTensorNames.WeightsFile} lacks '{name}' of shape [{string.Join(",", shape)}].");
                }
            }
        }
    }

    private static long WriteCheckpoint(string folder, ModelConfig config, AnchorPackage anchor, IReadOnlyList<ResolvedExpert> experts, string dtypeName, long shardBytes, CancellationToken cancellationToken)
    {
        var dtype = TorchRuntime.ResolveDType(dtypeName);
        var storage = TensorBytes.ToSafetensors(dtype);
        using var anchorWeights = SafetensorsCheckpoint.Open(anchor.ModelFolder);
        var publicRows = RouterEmbeddingFile.ReadRows(anchor.RouterEmbeddingPath, config.NumHiddenLayers, config.HiddenSize);
        var tensors = new List<TensorToWrite>();
        void Copy(string name, SafetensorsCheckpoint source, string sourceName)
        {
            var (file, info) = source.Locate(sourceName);
            tensors.Add(new TensorToWrite(name, storage, info.Shape, stream =>
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (info.DType == storage)
                {
                    file.CopyTo(info, 0, info.ByteLength, stream); // same dtype: bytes straight through
                    return;
                }

                using var values = TensorBytes.Read(file, info, 0, info.Shape);
                TensorBytes.Write(values, dtype, stream);
            }));
        }

        var perLayer = anchorWeights.Names.Where(n => n.StartsWith("model.layers.", StringComparison.Ordinal)).ToList();
        foreach (var name in anchorWeights.Names.Where(n => !n.StartsWith("model.layers.", StringComparison.Ordinal) && n != TensorNames.FinalNorm && n != TensorNames.LmHead))
        {
            Copy(name, anchorWeights, name);
        }

        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            var prefix = TensorNames.Layer(l) + ".";
            foreach (var name in perLayer.Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && !n.StartsWith(prefix + "mlp.", StringComparison.Ordinal)))
            {
                Copy(name, anchorWeights, name);
            }

            var layer = l;
            tensors.Add(new TensorToWrite(TensorNames.Router(l), storage, [config.NumExperts, config.HiddenSize], stream =>
            {
                using var scope = NewDisposeScope();
                var rows = new List<Tensor> { tensor(publicRows[layer]) };
                foreach (var expert in experts)
                {
                    var (file, info) = expert.Weights.Locate(ExpertTensorNames.RouterEmbedding(layer));
                    rows.Add(TensorBytes.Read(file, info, 0, info.Shape).to(ScalarType.Float32));
                }

                TensorBytes.Write(stack(rows, 0), dtype, stream); // [E, H]
            }));
            foreach (var projection in TensorNames.FfnProjections)
            {
                Copy(TensorNames.Expert(l, 0, projection), anchorWeights, TensorNames.DenseMlp(l, projection));
            }

            for (var e = 0; e < experts.Count; e++)
            {
                foreach (var projection in TensorNames.FfnProjections)
                {
                    Copy(TensorNames.Expert(l, e + 1, projection), experts[e].Weights, ExpertTensorNames.Ffn(l, projection));
                }
            }
        }

        Copy(TensorNames.FinalNorm, anchorWeights, TensorNames.FinalNorm);
        if (anchorWeights.Contains(TensorNames.LmHead))
        {
            Copy(TensorNames.LmHead, anchorWeights, TensorNames.LmHead);
        }

        SafetensorsWriter.WriteCheckpoint(folder, tensors, shardBytes, new Dictionary<string, string> { ["format"] = "pt" });
        return tensors.Sum(t => t.ByteLength);
    }

    internal sealed record ResolvedExpert(string Source, ExpertPackage Package, SafetensorsCheckpoint Weights, string ManifestSha256, ExpertVerification Verification, float[] RouterBias)
    {
        public SidecarExpert ToSidecar(int index)
        {
            var m = Package.Manifest.Value;
            return new SidecarExpert(index, m.Name, m.Version, m.Owner, m.License, Source, ManifestSha256, Verification.Signer, RouterBias)
            {
                ContentSha256 = Package.Manifest.ContentSha256,
                Verified = Verification.Trusted,
            };
        }
    }
}
