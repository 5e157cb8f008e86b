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
}
