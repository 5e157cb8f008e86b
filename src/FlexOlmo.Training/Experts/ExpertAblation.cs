namespace FlexOlmo.Training.Experts;

/// <summary>How the router row r_i starts: the domain embedding (the method), or a seeded random vector (an ablation).</summary>
public enum RouterInit
{
    Domain,
    Random,
}

/// <summary>
/// The paper's ablations of expert training (Table 3), for studies; the defaults are the method itself.
/// <see cref="TrainBias"/> false keeps b_i at 0; <see cref="RouterInit.Random"/> starts r_i from a random vector;
/// <see cref="Uncoordinated"/> fine-tunes the FFN alone, as a dense model, and keeps r_i at its initial embedding.
/// </summary>
public sealed record ExpertAblation(bool TrainBias = true, RouterInit RouterInit = RouterInit.Domain, bool Uncoordinated = false)
{
    public static readonly ExpertAblation None = new();

    /// <summary>The names <c>train-expert --ablation</c> takes, as the paper's Table 3 rows: the method, without the bias, without domain init (and bias), without coordinated training.</summary>
    public static readonly IReadOnlyDictionary<string, ExpertAblation> Named = new Dictionary<string, ExpertAblation>
    {
        ["none"] = None,
        ["no-bias"] = new(TrainBias: false),
        ["no-init"] = new(TrainBias: false, RouterInit: RouterInit.Random),
        ["no-coordination"] = new(Uncoordinated: true),
    };

    public bool IsNone => this == None;

    /// <summary>What an ablation leaves out, for logs and manifests, for example "no bias, random router init".</summary>
    public string Describe() => string.Join(", ", new[]
    {
        Uncoordinated ? "uncoordinated (the FFN fine-tuned alone)" : null,
        RouterInit == RouterInit.Random ? "random router init" : null,
        TrainBias || Uncoordinated ? null : "no bias",
    }.Where(s => s is not null));
}
