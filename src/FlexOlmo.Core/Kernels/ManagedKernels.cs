using static TorchSharp.torch;

namespace FlexOlmo.Core.Kernels;

/// <summary>The one rule for when this folder's managed kernels may run instead of libtorch's ops.</summary>
internal static class ManagedKernels
{
    /// <summary>AVX2 with FMA on this CPU, autograd off (the kernels record no graph), and both tensors in CPU memory.</summary>
    public static bool Usable(Tensor first, Tensor second) =>
        CpuGemv.IsSupported && !is_grad_enabled()
        && first.device_type == TorchSharp.DeviceType.CPU && second.device_type == TorchSharp.DeviceType.CPU;
}
