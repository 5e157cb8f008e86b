using FlexOlmo.Core.Modeling;
using FlexOlmo.Data;
using static TorchSharp.torch;

namespace FlexOlmo.Training.Experts;

// B=instances, L=sequence length

/// <summary>
/// What expert training updates: the owner's FFN (expert 1), its router row r_i and bias b_i, in every layer.
/// Everything else (embeddings, attention incl. q/k norms, all norms, lm_head, the public FFN, r_pub) is frozen:
/// those parameters get no gradient at all, and the shared router/bias tensors have their public slot's gradient
/// zeroed, so with weight decay 0 they stay bit-identical to the anchor.
/// The paper's ablations (Table 3) change what is trained: without the bias, b_i stays 0; without coordination, the
/// public expert is switched off while training (its bias slot is pinned far below zero, so its softmax weight is
/// exactly 0 and the owner's FFN is fine-tuned as the dense model's only FFN), and the router row keeps its
/// initial embedding.
/// </summary>
public sealed class ExpertTrainingTask : ITrainingTask
{
    /// <summary>The public expert's bias slot while training uncoordinated: exp(-1e4) is exactly 0 in fp32.</summary>
    internal const float SwitchedOff = -1e4f;

    private readonly Olmo2ForCausalLM _model;
    private readonly ExpertAblation _ablation;

    public ExpertTrainingTask(Olmo2ForCausalLM model, TrainingSettings settings, ExpertAblation? ablation = null)
    {
        _model = model;
        _ablation = ablation ?? ExpertAblation.None;
        foreach (var (_, parameter) in model.NamedParameters())
        {
            parameter.requires_grad = false;
        }

        var trainable = new List<TrainableParameter>();
        foreach (var (layer, index) in model.Model.Layers.Select((l, i) => (l, i)))
        {
            var moe = layer.Moe!;
            var expert = moe.Experts[ExpertModel.OwnerExpert];
            foreach (var (projection, linear) in new[] { ("gate_proj", expert.GateProj), ("up_proj", expert.UpProj), ("down_proj", expert.DownProj) })
            {
                linear.Weight.requires_grad = true;
                trainable.Add(new TrainableParameter($"layers.{index}.mlp.{projection}.weight", linear.Weight, Decay: false));
            }

            if (_ablation.Uncoordinated)
            {
                using var noGrad = no_grad();
                moe.RouterBias![ExpertModel.PublicExpert] = tensor(SwitchedOff);
                continue; // the router is not trained: r_i keeps its initial embedding
            }

            moe.Gate.Weight.requires_grad = true;
            trainable.Add(new TrainableParameter($"layers.{index}.router.rows", moe.Gate.Weight, Decay: false, settings.RouterLrScale));
            if (_ablation.TrainBias)
            {
                moe.RouterBias!.requires_grad = true;
                trainable.Add(new TrainableParameter($"layers.{index}.router.bias", moe.RouterBias, Decay: false, settings.RouterLrScale));
            }
        }

        Trainable = trainable;
    }

    public IReadOnlyList<TrainableParameter> Trainable { get; }

    public Olmo2ForCausalLM Model => _model;

    /// <summary>An ablation trains other parameters than the method, so its checkpoints resume only the same ablation; the method adds nothing, so its earlier checkpoints still resume.</summary>
    public string ResumeKey => _ablation.IsNone ? string.Empty : $";ablation={_ablation.Describe()}";

    /// <summary>Puts the public expert back after uncoordinated training, so validation and the package see the merged 2-expert model.</summary>
    public void FinishTraining()
    {
        if (!_ablation.Uncoordinated)
        {
            return;
        }

        using var noGrad = no_grad();
        foreach (var layer in _model.Model.Layers)
        {
            layer.Moe!.RouterBias![ExpertModel.PublicExpert] = tensor(0f);
        }
    }

    public void AfterBackward()
    {
        using var noGrad = no_grad();
        foreach (var layer in _model.Model.Layers)
        {
            var moe = layer.Moe!;
            using var rowGrad = moe.Gate.Weight.grad;
            rowGrad?[ExpertModel.PublicExpert].zero_(); // r_pub stays frozen
            using var biasGrad = moe.RouterBias!.grad;
            biasGrad?[ExpertModel.PublicExpert].zero_(); // only b_i is trained
        }
    }
}
