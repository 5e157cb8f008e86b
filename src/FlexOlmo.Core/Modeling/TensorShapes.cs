using static TorchSharp.torch;

namespace FlexOlmo.Core.Modeling;

/// <summary>
/// A tensor's sizes read one dimension at a time. TorchSharp's <c>shape</c> and <c>size()</c> leave a finalizable helper
/// behind on every call; a server step read them thousands of times, and each collection then spent 30 ms promoting
/// and finalizing some 80,000 of them (measured: a 3x step every second or so). <c>size(d)</c> and <c>dim()</c> leave
/// nothing. The other ops of that kind are in <see cref="GarbageFreeOps"/>.
/// </summary>
internal static class TensorShapes
{
    /// <summary>The sizes of <paramref name="tensor"/>, as <c>shape</c> gives them.</summary>
    public static long[] Of(Tensor tensor)
    {
        var sizes = new long[tensor.dim()];
        for (var d = 0; d < sizes.Length; d++)
        {
            sizes[d] = tensor.size(d);
        }

        return sizes;
    }

    /// <summary>Whether the two tensors have the same sizes.</summary>
    public static bool Same(Tensor first, Tensor second)
    {
        var dims = first.dim();
        if (dims != second.dim())
        {
            return false;
        }

        for (var d = 0; d < dims; d++)
        {
            if (first.size(d) != second.size(d))
            {
                return false;
            }
        }

        return true;
    }
}
