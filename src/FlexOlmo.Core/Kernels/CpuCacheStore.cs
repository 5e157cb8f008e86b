using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

// B=batch, K=kv heads, C=capacity, T=new tokens, D=head dim

/// <summary>
/// Writes a step's keys or values [B, K, T, D] into a cache buffer [B, K, C, D] at a position: one memory copy per
/// (row, head), without libtorch's ops.
/// </summary>
/// <remarks>
/// Written by hand because a decode step stored its keys and values through four libtorch calls per layer (two views
/// and two copies of a few hundred bytes each): 0.1-0.4 ms of a 9-20 ms decode step on the benchmark model, measured on a
/// 2-core Zen 5 EPYC. A copy changes no bits, so every result stays the same.
/// </remarks>
internal static unsafe class CpuCacheStore
{
    /// <summary>
    /// Whether <see cref="Write"/> takes <paramref name="source"/> [B, K, T, D] into <paramref name="buffer"/> [B, K, C, D]
    /// at <paramref name="position"/>: CPU, no autograd, the same dtype, both contiguous (a decode step's keys are: their
    /// token axis has one entry), and the tokens fit the buffer. Otherwise libtorch copies, and reports what is wrong.
    /// </summary>
    public static bool Applies(Tensor buffer, long position, Tensor source) =>
        ManagedKernels.Usable(buffer, source) && buffer.dim() == 4 && source.dim() == 4
        && source.dtype == buffer.dtype && buffer.is_contiguous() && source.is_contiguous()
        && source.size(0) == buffer.size(0) && source.size(1) == buffer.size(1) && source.size(3) == buffer.size(3)
        && position >= 0 && position + source.size(2) <= buffer.size(2);

    /// <summary>buffer[:, :, position : position + T] = source, for a <paramref name="source"/> that <see cref="Applies"/>.</summary>
    public static void Write(Tensor buffer, long position, Tensor source)
    {
        if (source.numel() == 0)
        {
            return;
        }

        var rows = source.size(0) * source.size(1); // B K
        var bytes = source.size(2) * source.size(3) * source.ElementSize; // T D, one (row, head)'s new positions
        var capacityBytes = buffer.size(2) * buffer.size(3) * buffer.ElementSize; // C D
        var offset = position * buffer.size(3) * buffer.ElementSize;
        var from = (byte*)CpuGemv.Address(source);
        var to = (byte*)CpuGemv.Address(buffer);
        for (var r = 0L; r < rows; r++)
        {
            Buffer.MemoryCopy(from + (r * bytes), to + (r * capacityBytes) + offset, capacityBytes - offset, bytes);
        }

        GC.KeepAlive(source);
        GC.KeepAlive(buffer);
    }
}
