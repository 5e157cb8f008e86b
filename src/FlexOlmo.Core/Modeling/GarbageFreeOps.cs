using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>
/// Libtorch ops for the per-step path, called so that they leave nothing for the finalizer. TorchSharp's <c>cat</c>
/// leaves a finalizable pinned array of handles behind, <c>data&lt;T&gt;()</c> three finalizable helpers, and every
/// sum of two tensors (its alpha) and every number it turns into a <c>Scalar</c> (<c>arange</c>'s
/// bounds, <c>le(0)</c>) a finalizable scalar. Undisposed, a server step left about a hundred of them; each collection
/// then promoted and finalized some 36,000 at once, and the step it fell in took 45-60 ms longer (measured with
/// <c>flexolmo-bench serve</c> on a 2-core CPU: steps of 3-4x their usual time while a long prompt was prefilled).
/// See also <see cref="TensorShapes"/>.
/// </summary>
internal static class GarbageFreeOps
{
    /// <summary>The alpha of every sum: <c>a + b</c> makes a new scalar 1 for it each time.</summary>
    private static readonly Scalar One = 1.ToScalar();

    /// <summary>a + b, elementwise with broadcasting, as <c>a + b</c> computes it.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary><paramref name="target"/> += <paramref name="b"/> in place, as <c>add_(b)</c> computes it; returns the target.</summary>
    public static Tensor AddInto(Tensor target, Tensor b) => target.add_(b, One);

    /// <summary>start, start+1, ..., stop-1 as int64 on <paramref name="device"/>: [stop - start].</summary>
    public static Tensor Range(long start, long stop, Device device)
    {
        using var first = start.ToScalar();
        using var end = stop.ToScalar();
        using var step = 1L.ToScalar();
        return arange(first, end, step, ScalarType.Int64, device);
    }

    /// <summary>The elements of <paramref name="tensor"/> in row-major order (its dtype must be <typeparamref name="T"/>'s), read through its bytes rather than <c>data&lt;T&gt;()</c>'s accessor.</summary>
    public static T[] ToArray<T>(Tensor tensor)
        where T : unmanaged
    {
        using var cpu = tensor.device_type == DeviceType.CPU ? tensor.contiguous() : tensor.cpu().contiguous();
        return MemoryMarshal.Cast<byte, T>(cpu.bytes).ToArray();
    }

    /// <summary>The parts one after another along dimension 0: each [n_i, ...] (same trailing sizes and dtype) -> [sum n_i, ...].</summary>
    public static Tensor CatRows(IReadOnlyList<Tensor> parts)
    {
        if (parts.Count == 1)
        {
            return parts[0].alias();
        }

        var sizes = TensorShapes.Of(parts[0]);
        sizes[0] = parts.Sum(p => p.size(0));
        var joined = empty(sizes, parts[0].dtype, parts[0].device);
        var row = 0L;
        foreach (var part in parts)
        {
            using var slot = joined.narrow(0, row, part.size(0));
            slot.copy_(part);
            row += part.size(0);
        }

        return joined;
    }
}
