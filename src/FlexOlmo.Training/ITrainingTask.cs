using FlexOlmo.Core.Modeling;
using TorchSharp.Modules;

namespace FlexOlmo.Training;

/// <summary>A trainable parameter, with whether weight decay applies to it and its learning rate as a multiple of the schedule's.</summary>
public sealed record TrainableParameter(string Name, Parameter Parameter, bool Decay, double LrScale = 1.0);

/// <summary>
/// What a training job supplies to <see cref="TrainingLoop"/>: the model, whose language-model loss it minimises
/// (<see cref="LanguageModelLoss"/>), and the parameters it trains.
/// </summary>
public interface ITrainingTask
{
    IReadOnlyList<TrainableParameter> Trainable { get; }

    Olmo2ForCausalLM Model { get; }

    /// <summary>Called after backward and before clipping: zero the gradients of frozen slices (for example r_pub). Runs after each checkpointed segment too, so it must be idempotent.</summary>
    void AfterBackward();

    /// <summary>
    /// What the task adds to <see cref="TrainingSettings.ResumeKey"/>: a checkpoint resumes only a task that would train
    /// the same way (empty when the settings say it all).
    /// </summary>
    string ResumeKey => string.Empty;
}
