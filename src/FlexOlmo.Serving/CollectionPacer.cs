namespace FlexOlmo.Serving;

/// <summary>
/// Collects the youngest generation between engine steps, after every <see cref="Bytes"/> the process allocates, so that
/// no collection falls inside a step. Every TorchSharp tensor is finalizable, and a generation-0 collection checks each
/// one registered since the last, so its pause grows with what was allocated since: on a 2-core CPU, with the 60 MB
/// budget the runtime chose there, a collection inside a step paused it 14-24 ms (a step of 1.4-1.6x its usual time
/// on <c>flexolmo-bench serve</c>'s model); after 8 MB, 2-5 ms.
/// </summary>
/// <remarks>
/// The runtime's own knob for this (<c>DOTNET_GCgen0size</c>) is read only from the environment, not from the
/// application's runtimeconfig.json (measured), so it cannot ship with the server.
/// </remarks>
internal sealed class CollectionPacer
{
    /// <summary>Bytes allocated (by the whole process) between two collections.</summary>
    public const long Bytes = 8L << 20;

    private readonly long _bytes;
    private readonly Func<long> _allocated;
    private long _collectedAt;

    /// <summary>Every <see cref="Bytes"/> of the process's allocations.</summary>
    public CollectionPacer()
        : this(Bytes, () => GC.GetTotalAllocatedBytes())
    {
    }

    /// <summary>Every <paramref name="bytes"/> by the counter <paramref name="allocated"/> (tests give their own).</summary>
    internal CollectionPacer(long bytes, Func<long> allocated)
    {
        _bytes = bytes;
        _allocated = allocated;
        _collectedAt = allocated();
    }

    /// <summary>Collects generation 0 if the bytes have been allocated since the last time; whether it did.</summary>
    public bool AfterStep()
    {
        if (_allocated() - _collectedAt < _bytes)
        {
            return false;
        }

        GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        _collectedAt = _allocated();
        return true;
    }
}
