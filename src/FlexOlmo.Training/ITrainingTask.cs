using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

/// <summary>A trainable parameter, with whether weight decay applies to it and its learning rate as a multiple of the schedule's.</summary>
public sealed record TrainableParameter(string Name, Parameter Parameter, bool Decay, double LrScale = 1.0);

/// <summary>What a training job supplies to <see cref="TrainingLoop"/>: the parameters it trains and its loss.</summary>
public interface ITrainingTask
{
    IReadOnlyList<TrainableParameter> Trainable { get; }

    /// <summary>Loss of a batch of instances [B, L+1] (inputs are [:, :-1], labels [:, 1:]): (total, cross-entropy).</summary>
    (Tensor Total, Tensor CrossEntropy) Loss(Tensor batch);

    /// <summary>Called after backward and before clipping: zero the gradients of frozen slices (for example r_pub).</summary>
    void AfterBackward();
}
