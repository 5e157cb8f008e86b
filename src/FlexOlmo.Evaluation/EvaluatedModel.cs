using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Packages;
using FlexOlmo.Training.Experts;

namespace FlexOlmo.Evaluation;

/// <summary>What kind of folder an evaluation was given.</summary>
public enum EvaluatedKind
{
    /// <summary>A flex_olmo checkpoint (usually from compose, with its flexolmo.json sidecar).</summary>
    Composed,

    /// <summary>A dense OLMo-2 checkpoint folder.</summary>
    Dense,

    /// <summary>An anchor folder from prepare-anchor (its dense model).</summary>
    Anchor,

    /// <summary>An expert package from train-expert, evaluated on its anchor as a 2-expert model.</summary>
    ExpertPackage,
}

/// <summary>
/// A model loaded for evaluation, whatever folder it came from, with a name for every expert in router order
/// (index 0 is always "public": the anchor's FFN). A dense model is one expert, the public one.
/// </summary>
public sealed class EvaluatedModel : IDisposable
{
    private EvaluatedModel(string path, EvaluatedKind kind, Olmo2ForCausalLM model, IReadOnlyList<string> expertNames, string tokenizerFolder)
    {
        Path = path;
        Kind = kind;
        Model = model;
        ExpertNames = expertNames;
        TokenizerFolder = tokenizerFolder;
    }

    public string Path { get; }

    public EvaluatedKind Kind { get; }

    public Olmo2ForCausalLM Model { get; }

    /// <summary>Expert names in router order; a dense model has the one name "public".</summary>
    public IReadOnlyList<string> ExpertNames { get; }

    /// <summary>Experts the router chooses from (1 for a dense model).</summary>
    public int NumExperts => ExpertNames.Count;

    /// <summary>The folder holding the tokenizer and generation defaults.</summary>
    public string TokenizerFolder { get; }

    /// <summary>The tokenizer that turns evaluation text into ids.</summary>
    public ITextTokenizer LoadTokenizer() => TokenizerLoader.Load(TokenizerFolder, Model.Config);

    /// <summary>The end-of-text id put between documents.</summary>
    public int EosTokenId => GenerationDefaults.EosTokenIds(TokenizerFolder, Model.Config) is { Count: > 0 } ids
        ? ids[0]
        : throw new EvaluationException($"{TokenizerFolder}: config.json has no eos_token_id, which is needed to separate documents.");

    /// <summary>
    /// Loads a composed or dense checkpoint folder, an anchor folder, or an expert package (which needs
    /// <paramref name="anchor"/>, the anchor folder it was trained against).
    /// </summary>
    public static EvaluatedModel Load(string path, string? anchor, string device, string dtype)
    {
        if (!Directory.Exists(path))
        {
            throw new EvaluationException($"--model {path}: no such folder. Give a composed model, a model folder, an anchor folder or an expert package.");
        }

        var torchDevice = TorchRuntime.ResolveDevice(device);
        if (ExpertPackage.IsPackage(path))
        {
            if (anchor is null)
            {
                throw new EvaluationException($"--model {path} is an expert package; give the anchor it was trained against with --anchor DIR.");
            }

            var anchorPackage = AnchorPackage.Open(anchor);
            var expert = ExpertPackage.Open(path);
            var anchorConfig = ModelConfig.Load(anchorPackage.ModelFolder);
            var model = ExpertModel.Load(anchorPackage, expert, torchDevice, TorchRuntime.ResolveDType(dtype, anchorConfig.StorageDType));
            return new EvaluatedModel(path, EvaluatedKind.ExpertPackage, model, [ComposedSidecar.PublicName, expert.Manifest.Value.Name], anchorPackage.ModelFolder);
        }

        if (AnchorPackage.IsPackage(path))
        {
            var anchorPackage = AnchorPackage.Open(path);
            return LoadCheckpoint(anchorPackage.ModelFolder, path, EvaluatedKind.Anchor, torchDevice, dtype);
        }

        if (!File.Exists(System.IO.Path.Combine(path, ModelConfig.FileName)))
        {
            throw new EvaluationException($"--model {path}: has no config.json, anchor.json or expert.json; it is not a model, anchor or expert package.");
        }

        return LoadCheckpoint(path, path, null, torchDevice, dtype);
    }

    private static EvaluatedModel LoadCheckpoint(string folder, string path, EvaluatedKind? kind, TorchSharp.torch.Device device, string dtype)
    {
        var config = ModelConfig.Load(folder);
        var model = CheckpointLoader.Load(folder, device, TorchRuntime.ResolveDType(dtype, config.StorageDType));
        if (!config.IsMoe)
        {
            return new EvaluatedModel(path, kind ?? EvaluatedKind.Dense, model, [ComposedSidecar.PublicName], folder);
        }

        return new EvaluatedModel(path, EvaluatedKind.Composed, model, ComposedSidecar.ExpertNamesOf(folder, config.NumExperts), folder);
    }

    public void Dispose() => Model.Dispose();
}
