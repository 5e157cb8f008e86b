using FlexOlmo.Core.Modeling;

namespace FlexOlmo.Training.RouterTuning;

// B=instances, L=sequence length

/// <summary>
/// Router tuning on proxy data (method §5): only the router rows of every layer are trained (all of them, r_pub
/// included), everything else frozen, with weight decay and the router z-loss; the model is built with every expert
/// active (top-k = E) for the tuning.
/// </summary>
internal sealed class RouterTuningTask : ITrainingTask
{
    private readonly Olmo2ForCausalLM _model;

    public RouterTuningTask(Olmo2ForCausalLM model)
    {
        _model = model;
        foreach (var (_, parameter) in model.NamedParameters())
        {
            parameter.requires_grad = false;
        }

        Trainable = model.Model.Layers.Select((layer, i) =>
        {
            var gate = layer.Moe?.Gate.Weight ?? throw new TrainingException("Router tuning needs a FlexOlmo (mixture-of-experts) model.");
            gate.requires_grad = true;
            return new TrainableParameter($"model.layers.{i}.mlp.gate.weight", gate, Decay: true);
        }).ToList();
    }

    public IReadOnlyList<TrainableParameter> Trainable { get; }

    public Olmo2ForCausalLM Model => _model;

    public void AfterBackward()
    {
    }
}
