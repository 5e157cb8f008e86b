using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using FlexOlmo.Packages;

namespace FlexOlmo.Evaluation;

/// <summary>
/// A model loaded for evaluation by the one model-folder loader (<see cref="ModelFolder"/>), whatever folder it came
/// from, with a name for every expert in router order (index 0 is always "public": the anchor's FFN). A dense model
/// is one expert, the public one.
/// </summary>
internal sealed class EvaluatedModel : IDisposable
{
    private readonly ModelFolder _folder;

    private EvaluatedModel(ModelFolder folder) => _folder = folder;

    public string Path => _folder.Path;

    public ModelFolderKind Kind => _folder.Kind;

    public Olmo2ForCausalLM Model => _folder.Model;

    /// <summary>Expert names in router order; a dense model has the one name "public".</summary>
    public IReadOnlyList<string> ExpertNames => Named(_folder.ExpertNames);

    /// <summary>Experts the router chooses from (1 for a dense model).</summary>
    public int NumExperts => ExpertNames.Count;

    /// <summary>How evaluation text becomes ids (tokenizer and EOS looked up only for text files).</summary>
    public TextEncoding TextEncoding => _folder.TextEncoding;

    /// <summary>
    /// Loads a composed or dense checkpoint folder, an anchor folder, or an expert package (which needs
    /// <paramref name="anchor"/>, the anchor folder it was trained against).
    /// </summary>
    /// <remarks><paramref name="beforeLoading"/> sees the expert names (as <see cref="ExpertNames"/> will give them) before any weight is loaded.</remarks>
    public static EvaluatedModel Load(string path, string? anchor, string device, string dtype, Action<IReadOnlyList<string>>? beforeLoading = null)
    {
        try
        {
            return new EvaluatedModel(ModelFolder.Load(path, anchor, device, dtype, (_, names) => beforeLoading?.Invoke(Named(names))));
        }
        catch (DataException e)
        {
            throw new EvaluationException(e.Message);
        }
    }

    public void Dispose() => _folder.Dispose();

    /// <summary>A dense model's one expert is the public one.</summary>
    private static IReadOnlyList<string> Named(IReadOnlyList<string> names) => names.Count > 0 ? names : [ComposedSidecar.PublicName];
}
