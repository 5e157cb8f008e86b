using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Packages;

namespace FlexOlmo.Cli;

/// <summary>A model loaded for a command, with the expert names its sidecar gives (when it has one).</summary>
internal sealed class LoadedModel : IDisposable
{
    private LoadedModel(string folder, Olmo2ForCausalLM model, IReadOnlyList<string>? expertNames)
    {
        Folder = folder;
        Model = model;
        ExpertNames = expertNames;
        Tokenizer = TokenizerLoader.TryLoad(folder, model.Config);
        EosTokenIds = GenerationDefaults.EosTokenIds(folder, model.Config);
    }

    public string Folder { get; }

    public Olmo2ForCausalLM Model { get; }

    /// <summary>The model's tokenizer, or null (token ids only).</summary>
    public ITextTokenizer? Tokenizer { get; }

    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>The tokenizer, or a clear error when text was given for a model without one.</summary>
    public ITextTokenizer RequireTokenizer() => Tokenizer ?? TokenizerLoader.Load(Folder, Model.Config);

    /// <summary>Expert names in router order (the sidecar's, else public, expert-1, ...); null for a dense model.</summary>
    public IReadOnlyList<string>? ExpertNames { get; }

    public static LoadedModel Load(string folder, string device, string dtype)
    {
        var config = ModelConfig.Load(folder);
        var model = CheckpointLoader.Load(folder, TorchRuntime.ResolveDevice(device), TorchRuntime.ResolveDType(dtype, config.StorageDType));
        return new LoadedModel(folder, model, config.IsMoe ? ComposedSidecar.ExpertNamesOf(folder, config.NumExperts) : null);
    }

    /// <summary>The expert set the include/exclude options ask for; null for a dense model or when neither is given.</summary>
    public ExpertSet? ExpertSet(string? include, string? exclude)
    {
        if (string.IsNullOrWhiteSpace(include) && string.IsNullOrWhiteSpace(exclude))
        {
            return null;
        }

        if (!Model.Config.IsMoe)
        {
            throw new ExpertMaskException("--include-experts/--exclude-experts need a FlexOlmo (flex_olmo) model; this one is dense.");
        }

        return Core.Modeling.ExpertSet.Parse(include, exclude, Model.Config.NumExperts, ExpertNames);
    }

    public void Dispose() => Model.Dispose();
}
