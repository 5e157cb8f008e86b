namespace FlexOlmo.Data;

/// <summary>
/// A deterministic split of a dataset's instances into training and held-out validation sets, and the training
/// order: shuffled with the seed, reshuffled each epoch, the same on every run and after a resume.
/// </summary>
public sealed class InstanceSplit
{
    private readonly long[] _train;
    private readonly long _seed;
    private long[]? _epochOrder;
    private long _epoch = -1;

    public InstanceSplit(long instances, double validationFraction, long seed)
    {
        if (validationFraction is < 0 or >= 1)
        {
            throw new DataException($"--val-fraction must be in [0, 1) (got {validationFraction}).");
        }

        _seed = seed;
        var order = Permutation(instances, seed);
        var validation = validationFraction > 0 && instances >= 2 ? (long)Math.Max(1, Math.Round(instances * validationFraction)) : 0;
        Validation = order.Take((int)validation).Order().ToArray();
        _train = order.Skip((int)validation).ToArray();
        if (_train.Length == 0)
        {
            throw new DataException($"The data makes {instances} training instance(s) after holding out {validation} for validation; add data or lower --seq-len.");
        }
    }

    public IReadOnlyList<long> Validation { get; }

    public long TrainCount => _train.Length;

    /// <summary>The training instance at a global position (position / TrainCount is the epoch).</summary>
    public long TrainInstanceAt(long position)
    {
        var epoch = position / _train.Length;
        if (epoch != _epoch)
        {
            var shuffle = Permutation(_train.Length, _seed + 7919 * (epoch + 1));
            _epochOrder = shuffle.Select(i => _train[i]).ToArray();
            _epoch = epoch;
        }

        return _epochOrder![position % _train.Length];
    }

    private static long[] Permutation(long count, long seed)
    {
        var order = new long[count];
        for (var i = 0L; i < count; i++)
        {
            order[i] = i;
        }

        new Random(unchecked((int)(seed ^ (seed >> 32)))).Shuffle(order);
        return order;
    }
}
