using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Generation;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Native;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Packages;

namespace FlexOlmo.Serving;

/// <summary>One expert as the server presents it (from the composed model's sidecar when it has one).</summary>
public sealed record ServedExpert(int Index, string Name, string? Version, string Owner, string License);

/// <summary>The served model, its tokenizer and chat template, and the experts by name and index.</summary>
public sealed class ModelHost : IDisposable
{
    private ModelHost(string folder, Olmo2ForCausalLM model, ITextTokenizer? tokenizer, ChatTemplate? template, IReadOnlyList<int> eos, IReadOnlyList<ServedExpert> experts, string name, ComposedSidecar? sidecar)
    {
        Folder = folder;
        Model = model;
        Tokenizer = tokenizer;
        ChatTemplate = template;
        EosTokenIds = eos;
        Experts = experts;
        Name = name;
        Sidecar = sidecar;
    }

    public string Folder { get; }

    public Olmo2ForCausalLM Model { get; }

    public ITextTokenizer? Tokenizer { get; }

    public ChatTemplate? ChatTemplate { get; }

    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary>Experts in router order (empty for a dense model).</summary>
    public IReadOnlyList<ServedExpert> Experts { get; }

    public ComposedSidecar? Sidecar { get; }

    public string Name { get; }

    public int NumExperts => Model.Config.IsMoe ? Model.Config.NumExperts : 0;

    public ExpertSet AllExperts => ExpertSet.All(Math.Max(1, NumExperts));

    public static ModelHost Load(ServerOptions options)
    {
        var config = ModelConfig.Load(options.Model);
        var model = CheckpointLoader.Load(options.Model, TorchRuntime.ResolveDevice(options.Device), TorchRuntime.ResolveDType(options.DType, config.StorageDType));
        var sidecar = ComposedSidecar.TryLoad(options.Model);
        var experts = !config.IsMoe ? []
            : sidecar is not null && sidecar.Experts.Count == config.NumExperts
                ? sidecar.Experts.Select(e => new ServedExpert(e.Index, e.Name, e.Version, e.Owner, e.License)).ToList()
                : Enumerable.Range(0, config.NumExperts).Select(i => new ServedExpert(i, ComposedSidecar.DefaultName(i), null, "unknown", "unknown")).ToList();
        var name = options.ModelName ?? sidecar?.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Model)));
        return new ModelHost(
            options.Model,
            model,
            TokenizerLoader.TryLoad(options.Model, config),
            ChatTemplate.TryLoad(options.Model),
            GenerationDefaults.EosTokenIds(options.Model, config),
            experts,
            name,
            sidecar);
    }

    /// <summary>An expert by name or index; the message of the error names what exists.</summary>
    public int ResolveExpert(string reference, string param)
    {
        try
        {
            return ExpertSet.ResolveOne(reference, NumExperts, Experts.Select(e => e.Name).ToList());
        }
        catch (ExpertMaskException e)
        {
            throw new ApiException(400, e.Message, param, "unknown_expert");
        }
    }

    public IReadOnlyList<string> Names(ExpertSet set) => set.Allowed.Select(i => Experts[i].Name).ToList();

    public void Dispose() => Model.Dispose();
}
