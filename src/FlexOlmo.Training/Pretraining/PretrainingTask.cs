using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Pretraining;

/// <summary>Training a dense OLMo-2 from scratch: every weight trainable; weight decay on matrices except the embeddings.</summary>
internal sealed class PretrainingTask : ITrainingTask
{
    private readonly Olmo2ForCausalLM _model;
    private readonly TrainingSettings _settings;

    public PretrainingTask(Olmo2ForCausalLM model, TrainingSettings settings)
    {
        _model = model;
        _settings = settings;
        Trainable = model.NamedParameters()
            .Select(p => new TrainableParameter(p.Name, p.Parameter, Decay: p.Parameter.dim() >= 2 && !p.Name.Contains("embed_tokens", StringComparison.Ordinal)))
            .ToList();
    }

    public IReadOnlyList<TrainableParameter> Trainable { get; }

    public (Tensor Total, Tensor CrossEntropy) Loss(Tensor batch) => LanguageModelLoss.OfBatch(_model, batch, _settings);

    public void AfterBackward()
    {
    }
}
