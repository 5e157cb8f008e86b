using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>Hardware baselines measured in the same run as each benchmark.</summary>
internal static class Baselines
{
    /// <summary>
    /// Best matmul throughput (GFLOP/s) of square products at the given size and dtype, over about
    /// <paramref name="seconds"/>: libtorch's, or with <paramref name="inference"/> the product the model's forward passes
    /// make without autograd (<see cref="MatmulBurst"/>).
    /// </summary>
    public static double MatmulGflops(ScalarType dtype, Device device, int size = 2048, double seconds = 2.0, bool inference = false)
    {
        using var burst = new MatmulBurst(dtype, device, size, inference);
        return burst.Run(seconds).Best;
    }

    public static void Synchronize(Device device)
    {
        if (device.type == TorchSharp.DeviceType.CUDA)
        {
            cuda.synchronize(device);
        }
    }
}
