namespace FlexOlmo.Core.Kernels;

/// <summary>
/// One size class of <see cref="PassProfile"/>: the passes that read less than <paramref name="UpperBytes"/> of weight
/// (and at least the class below's bound), how many there were, the bytes they read and the time they took together.
/// </summary>
public readonly record struct PassTotals(long UpperBytes, long Passes, long Bytes, TimeSpan Time)
{
    /// <summary>Bytes read per second across the class's passes, or 0 without any.</summary>
    public double BytesPerSecond => Time > TimeSpan.Zero ? Bytes / Time.TotalSeconds : 0;

    /// <summary>This class and <paramref name="other"/> together: their passes, bytes and time added, under the larger bound.</summary>
    public PassTotals Plus(PassTotals other) =>
        new(Math.Max(UpperBytes, other.UpperBytes), Passes + other.Passes, Bytes + other.Bytes, Time + other.Time);
}
