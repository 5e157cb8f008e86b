using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>The one rule for when this folder's managed kernels may run instead of libtorch's ops.</summary>
internal static class ManagedKernels
{
    /// <summary>
    /// Most rows an elementwise kernel takes outside decoding: larger inputs (a prefill) amortise libtorch's per-op
    /// dispatch, and keep its arithmetic.
    /// </summary>
    public const int MaxRows = 16;

    /// <summary>AVX2 with FMA on this CPU, autograd off (the kernels record no graph), and both tensors in CPU memory.</summary>
    public static bool Usable(Tensor first, Tensor second) =>
        CpuGemv.IsSupported && !is_grad_enabled()
        && first.device_type == TorchSharp.DeviceType.CPU && second.device_type == TorchSharp.DeviceType.CPU;

    /// <summary>
    /// Whether <paramref name="tensor"/>'s elements fill one block of memory in some order of its dims: a contiguous
    /// tensor, or a view of one with its dims permuted (such as a projection's output split into heads and transposed).
    /// Then <see cref="Address"/> gives its first element and its strides locate the rest.
    /// </summary>
    public static bool IsDense(Tensor tensor)
    {
        if (tensor.is_contiguous())
        {
            return true; // a decode step's heads: no permutation to look for
        }

        using var permuted = tensor.permute(ByStride(tensor));
        return permuted.is_contiguous();
    }

    /// <summary>The address of a dense tensor's first element (see <see cref="IsDense"/>).</summary>
    public static nint Address(Tensor tensor)
    {
        if (tensor.is_contiguous())
        {
            return CpuGemv.Address(tensor);
        }

        using var permuted = tensor.permute(ByStride(tensor)); // contiguous, so its bytes may be taken; the same first element
        return CpuGemv.Address(permuted);
    }

    /// <summary>The dims from the largest stride to the smallest (ties in their order), a permutation that makes a dense tensor contiguous.</summary>
    private static long[] ByStride(Tensor tensor)
    {
        var strides = Strides(tensor);
        return Enumerable.Range(0, strides.Length).OrderByDescending(d => strides[d]).Select(d => (long)d).ToArray();
    }

    /// <summary>The strides dim by dim: TorchSharp's <c>stride()</c> leaves a finalizable object per call, which a server step must not.</summary>
    public static long[] Strides(Tensor tensor) => Enumerable.Range(0, (int)tensor.dim()).Select(d => tensor.stride(d)).ToArray();
}
