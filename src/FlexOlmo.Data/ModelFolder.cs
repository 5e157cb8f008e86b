using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Packages;

namespace FlexOlmo.Data;

/// <summary>What kind of folder a model came from.</summary>
public enum ModelFolderKind
{
    /// <summary>A flex_olmo checkpoint (usually from compose, with its flexolmo.json sidecar).</summary>
    Composed,

    /// <summary>A dense OLMo-2 checkpoint folder.</summary>
    Dense,

    /// <summary>An anchor folder from prepare-anchor (its dense model).</summary>
    Anchor,

    /// <summary>An expert package from train-expert, loaded on its anchor as a 2-expert model.</summary>
    ExpertPackage,
}

/// <summary>
/// The one loader of model folders, shared by every command, the server and evaluation: a Hugging Face checkpoint
/// folder (dense or composed), an anchor folder, or an expert package on its anchor. It gives the model, its config,
/// the folder holding its tokenizer and generation defaults, the tokenizer (looked up when first needed), the EOS
/// ids, and the expert names in router order by the one naming rule (<see cref="ComposedSidecar.ExpertNamesOf"/>).
/// </summary>
public sealed class ModelFolder : IDisposable
{
    private readonly Lazy<ITextTokenizer?> _tokenizer;

    private ModelFolder(string path, ModelFolderKind kind, Olmo2ForCausalLM model, IReadOnlyList<string> expertNames, string tokenizerFolder, ComposedSidecar? sidecar)
    {
        Path = path;
        Kind = kind;
        Model = model;
        ExpertNames = expertNames;
        TokenizerFolder = tokenizerFolder;
        Sidecar = sidecar;
        _tokenizer = new Lazy<ITextTokenizer?>(() => TokenizerLoader.TryLoad(tokenizerFolder, model.Config));
        EosTokenIds = GenerationDefaults.EosTokenIds(tokenizerFolder, model.Config);
    }

    /// <summary>The folder as the user named it.</summary>
    public string Path { get; }

    public ModelFolderKind Kind { get; }

    public Olmo2ForCausalLM Model { get; }

    public ModelConfig Config => Model.Config;

    /// <summary>Experts in router order ("public" first); empty for a dense model.</summary>
    public IReadOnlyList<string> ExpertNames { get; }

    /// <summary>The composed model's sidecar (owners, licences, signers), when it has one.</summary>
    public ComposedSidecar? Sidecar { get; }

    /// <summary>The folder holding the tokenizer and generation defaults (the anchor's model for a package).</summary>
    public string TokenizerFolder { get; }

    /// <summary>The model's tokenizer, or null (token ids only).</summary>
    public ITextTokenizer? Tokenizer => _tokenizer.Value;

    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>How text files become ids for this model (tokenizer and EOS looked up only for text).</summary>
    public TextEncoding TextEncoding => new(RequireTokenizer, () => EosTokenIds.Count > 0
        ? EosTokenIds[0]
        : throw new DataException($"{TokenizerFolder}: config.json has no eos_token_id, which text data needs to separate documents. Add it, or give token shards (.npy, .bin)."));

    /// <summary>The tokenizer, or a clear error when text was given for a model without one.</summary>
    public ITextTokenizer RequireTokenizer() => Tokenizer ?? TokenizerLoader.Load(TokenizerFolder, Config);

    /// <summary>
    /// Loads a composed or dense checkpoint folder, an anchor folder, or an expert package (which needs
    /// <paramref name="anchor"/>, the anchor folder it was trained against). <paramref name="dtype"/> "auto" keeps the
    /// checkpoint's.
    /// </summary>
    /// <remarks>
    /// <paramref name="beforeLoading"/> sees the config and the expert names (router order, empty for a dense model)
    /// after the folder is read and before any weight is, so that a command can refuse its own bad arguments (an
    /// unknown expert in a mask) without first loading gigabytes.
    /// </remarks>
    public static ModelFolder Load(string path, string? anchor, string device, string dtype, Action<ModelConfig, IReadOnlyList<string>>? beforeLoading = null)
    {
        if (!Directory.Exists(path))
        {
            throw new DataException($"--model {path}: no such folder. Give a composed model, a model folder, an anchor folder or an expert package.");
        }

        var torchDevice = TorchRuntime.ResolveDevice(device);
        if (ExpertPackage.IsPackage(path))
        {
            if (anchor is null)
            {
                throw new DataException($"--model {path} is an expert package; give the anchor it was trained against with --anchor DIR.");
            }

            var anchorPackage = AnchorPackage.Open(anchor);
            var expert = ExpertPackage.Open(path);
            var anchorConfig = ModelConfig.Load(anchorPackage.ModelFolder);
            string[] names = [ComposedSidecar.PublicName, expert.Manifest.Value.Name];
            beforeLoading?.Invoke(ExpertModel.ConfigFor(anchorConfig), names);
            var model = ExpertModel.Load(anchorPackage, expert, torchDevice, TorchRuntime.ResolveDType(dtype, anchorConfig.StorageDType));
            return new ModelFolder(path, ModelFolderKind.ExpertPackage, model, names, anchorPackage.ModelFolder, null);
        }

        if (AnchorPackage.IsPackage(path))
        {
            return Checkpoint(AnchorPackage.Open(path).ModelFolder, path, ModelFolderKind.Anchor, torchDevice, dtype, beforeLoading);
        }

        if (!File.Exists(System.IO.Path.Combine(path, ModelConfig.FileName)))
        {
            throw new DataException($"--model {path}: has no config.json, anchor.json or expert.json; it is not a model, anchor or expert package.");
        }

        return Checkpoint(path, path, null, torchDevice, dtype, beforeLoading);
    }

    private static ModelFolder Checkpoint(string folder, string path, ModelFolderKind? kind, TorchSharp.torch.Device device, string dtype, Action<ModelConfig, IReadOnlyList<string>>? beforeLoading)
    {
        var config = ModelConfig.Load(folder);
        var names = config.IsMoe ? ComposedSidecar.ExpertNamesOf(folder, config.NumExperts) : [];
        beforeLoading?.Invoke(config, names);
        var model = CheckpointLoader.Load(folder, device, TorchRuntime.ResolveDType(dtype, config.StorageDType));
        if (!config.IsMoe)
        {
            return new ModelFolder(path, kind ?? ModelFolderKind.Dense, model, [], folder, null);
        }

        return new ModelFolder(path, ModelFolderKind.Composed, model, names, folder, ComposedSidecar.TryLoad(folder));
    }

    /// <summary>
    /// The experts a request asks for by --include-experts/--exclude-experts (names or indices); null when neither is
    /// given. A dense model takes no expert selection.
    /// </summary>
    public ExpertSet? SelectExperts(string? include, string? exclude) => SelectExperts(Config, ExpertNames, include, exclude);

    /// <summary>
    /// Loads a model folder for a command with --include-experts/--exclude-experts: a selection naming an expert the
    /// model does not have is refused before any weight loads. Returns the folder and the selection (null: all).
    /// </summary>
    public static (ModelFolder Folder, ExpertSet? Experts) LoadSelecting(string path, string device, string dtype, string? include, string? exclude)
    {
        ExpertSet? experts = null;
        var folder = Load(path, null, device, dtype, (config, names) => experts = SelectExperts(config, names, include, exclude));
        return (folder, experts);
    }

    /// <summary>The same selection from a config and expert names alone (for <see cref="Load"/>'s check before loading).</summary>
    public static ExpertSet? SelectExperts(ModelConfig config, IReadOnlyList<string> names, string? include, string? exclude)
    {
        if (string.IsNullOrWhiteSpace(include) && string.IsNullOrWhiteSpace(exclude))
        {
            return null;
        }

        if (!config.IsMoe)
        {
            throw new ExpertMaskException("--include-experts/--exclude-experts need a FlexOlmo (flex_olmo) model; this one is dense.");
        }

        return ExpertSet.Parse(include, exclude, config.NumExperts, names);
    }

    public void Dispose() => Model.Dispose();
}
