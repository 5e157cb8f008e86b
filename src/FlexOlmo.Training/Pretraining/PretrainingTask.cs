using FlexOlmo.Core.Modeling;

namespace FlexOlmo.Training.Pretraining;

/// <summary>Training a dense OLMo-2 from scratch: every weight trainable; weight decay on matrices except the embeddings.</summary>
internal sealed class PretrainingTask : ITrainingTask
{
    private readonly Olmo2ForCausalLM _model;

    public PretrainingTask(Olmo2ForCausalLM model)
    {
        _model = model;
        Trainable = model.NamedParameters()
            .Select(p => new TrainableParameter(p.Name, p.Parameter, Decay: p.Parameter.dim() >= 2 && !p.Name.Contains("embed_tokens", StringComparison.Ordinal)))
            .ToList();
    }

    public IReadOnlyList<TrainableParameter> Trainable { get; }

    public Olmo2ForCausalLM Model => _model;

    public void AfterBackward()
    {
    }
}
