using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Core.Tokenization;
using FlexOlmo.Data;
using FlexOlmo.Packages;

namespace FlexOlmo.Serving;

/// <summary>One expert as the server presents it (from the composed model's sidecar when it has one).</summary>
public sealed record ServedExpert(int Index, string Name, string? Version, string Owner, string License);

/// <summary>The served model (loaded by the one model-folder loader), its chat template, and the experts by name and index.</summary>
public sealed class ModelHost : IDisposable
{
    private readonly ModelFolder _folder;

    private ModelHost(ModelFolder folder, ChatTemplate? template, IReadOnlyList<ServedExpert> experts, string name, ComposedSidecar? sidecar)
    {
        _folder = folder;
        ChatTemplate = template;
        Experts = experts;
        Name = name;
        Sidecar = sidecar;
    }

    public string Folder => _folder.Path;

    public Olmo2ForCausalLM Model => _folder.Model;

    public ITextTokenizer? Tokenizer => _folder.Tokenizer;

    public ChatTemplate? ChatTemplate { get; }

    public IReadOnlyList<int> EosTokenIds => _folder.EosTokenIds;

    /// <summary>Experts in router order (empty for a dense model).</summary>
    public IReadOnlyList<ServedExpert> Experts { get; }

    /// <summary>The sidecar, when it describes this model's experts.</summary>
    public ComposedSidecar? Sidecar { get; }

    public string Name { get; }

    public int NumExperts => Model.Config.IsMoe ? Model.Config.NumExperts : 0;

    public ExpertSet AllExperts => ExpertSet.All(Math.Max(1, NumExperts));

    /// <param name="beforeLoading">Sees the config and expert names before any weight loads (see <see cref="ModelFolder.Load"/>).</param>
    public static ModelHost Load(ServerOptions options, Action<ModelConfig, IReadOnlyList<string>>? beforeLoading = null)
    {
        var folder = ModelFolder.Load(options.Model, null, options.Device, options.DType, beforeLoading);
        var sidecar = folder.Sidecar is { } s && s.Experts.Count == folder.ExpertNames.Count ? s : null;
        var experts = folder.ExpertNames.Select((name, i) => sidecar?.Experts[i] is { } e
            ? new ServedExpert(e.Index, e.Name, e.Version, e.Owner, e.License)
            : new ServedExpert(i, name, null, "unknown", "unknown")).ToList();
        var name = options.ModelName ?? sidecar?.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Model)));
        return new ModelHost(folder, ChatTemplate.TryLoad(options.Model), experts, name, sidecar);
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

    public void Dispose() => _folder.Dispose();
}
