using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Formats.Safetensors;
using static TorchSharp.torch;

namespace FlexOlmo.Training;

/// <summary>
/// AdamW with decoupled weight decay, with the same arithmetic as PyTorch's (and TorchSharp's): p *= 1 - lr*wd;
/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). Each parameter
/// has its own learning-rate scale and says whether weight decay applies.
/// </summary>
/// <remarks>
/// Written here because TorchSharp 0.107's AdamW keeps every parameter's temporaries (sqrt(v) and the quotient) until
/// the whole step ends: 8 bytes per trained parameter on top of the moments. For a 1B expert that is 6.4 GB, and the
/// run no longer fits in 24 GiB. This one updates in place, one parameter at a time, with one temporary of that
/// parameter's size.
/// </remarks>
internal sealed class AdamWOptimizer : IDisposable
{
    private const string FirstMoment = ".exp_avg";
    private const string SecondMoment = ".exp_avg_sq";

    private readonly IReadOnlyList<Entry> _entries;
    private readonly double _beta1;
    private readonly double _beta2;
    private readonly double _eps;
    private readonly double _weightDecay;

    public AdamWOptimizer(IReadOnlyList<(string Name, TorchSharp.Modules.Parameter Parameter, bool Decay, double LrScale)> parameters, double beta1, double beta2, double eps, double weightDecay)
    {
        _beta1 = beta1;
        _beta2 = beta2;
        _eps = eps;
        _weightDecay = weightDecay;
        _entries = parameters.Select(p => new Entry(p.Name, p.Parameter, p.Decay, p.LrScale, zeros_like(p.Parameter), zeros_like(p.Parameter))).ToList();
    }

    /// <summary>Steps taken: the bias corrections depend on it.</summary>
    public long Steps { get; private set; }

    /// <summary>One update of every parameter that has a gradient, at learning rate <paramref name="lr"/> times its scale.</summary>
    public void Step(double lr)
    {
        Steps++;
        var correction1 = 1 - Math.Pow(_beta1, Steps);
        var correction2 = Math.Sqrt(1 - Math.Pow(_beta2, Steps));
        using var noGrad = no_grad();
        foreach (var entry in _entries)
        {
            using var grad = entry.Parameter.grad;
            if (grad is null)
            {
                continue;
            }

            var rate = lr * entry.LrScale;
            if (entry.Decay && _weightDecay > 0)
            {
                entry.Parameter.mul_(1 - (rate * _weightDecay));
            }

            entry.FirstMoment.mul_(_beta1).add_(grad, alpha: 1 - _beta1);
            entry.SecondMoment.mul_(_beta2).addcmul_(grad, grad, value: 1 - _beta2);
            using var denominator = entry.SecondMoment.sqrt();
            denominator.div_(correction2).add_(_eps);
            entry.Parameter.addcdiv_(entry.FirstMoment, denominator, value: -rate / correction1);
        }
    }

    /// <summary>The moments as fp32 tensors named after their parameters, for a checkpoint.</summary>
    public IEnumerable<TensorToWrite> State() => _entries.SelectMany(e => new[]
    {
        new TensorToWrite(e.Name + FirstMoment, SafetensorsDType.F32, e.FirstMoment.shape, s => TensorBytes.Write(e.FirstMoment, ScalarType.Float32, s)),
        new TensorToWrite(e.Name + SecondMoment, SafetensorsDType.F32, e.SecondMoment.shape, s => TensorBytes.Write(e.SecondMoment, ScalarType.Float32, s)),
    });

    /// <summary>Restores the moments and the step count from a checkpoint; the message names what does not match.</summary>
    public void Load(SafetensorsCheckpoint checkpoint, long steps, string folder)
    {
        using var noGrad = no_grad();
        foreach (var entry in _entries)
        {
            foreach (var (suffix, moment) in new[] { (FirstMoment, entry.FirstMoment), (SecondMoment, entry.SecondMoment) })
            {
                var name = entry.Name + suffix;
                if (!checkpoint.Contains(name))
                {
                    throw new TrainingException($"{folder}: the optimiser state lacks '{name}'; it belongs to another job or an older version. Start a new --out folder.");
                }

                var (file, info) = checkpoint.Locate(name);
                if (!info.Shape.SequenceEqual(moment.shape))
                {
                    throw new TrainingException($"{folder}: '{name}' has shape [{string.Join(",", info.Shape)}], the parameter needs [{string.Join(",", moment.shape)}].");
                }

                using var values = TensorBytes.Read(file, info, 0, info.Shape);
                moment.copy_(values);
            }
        }

        Steps = steps;
    }

    public void Dispose()
    {
        foreach (var entry in _entries)
        {
            entry.FirstMoment.Dispose();
            entry.SecondMoment.Dispose();
        }
    }

    private sealed record Entry(string Name, TorchSharp.Modules.Parameter Parameter, bool Decay, double LrScale, Tensor FirstMoment, Tensor SecondMoment);
}
