using System.Diagnostics;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>Hardware baselines measured in the same run as each benchmark.</summary>
internal static class Baselines
{
    /// <summary>Best matmul throughput (GFLOP/s) of square products at the given size and dtype.</summary>
    public static double MatmulGflops(ScalarType dtype, Device device, int size = 2048, double seconds = 2.0)
    {
        using var scope = NewDisposeScope();
        var a = randn([size, size], ScalarType.Float32, device).to(dtype);
        var b = randn([size, size], ScalarType.Float32, device).to(dtype);
        var flops = 2.0 * size * size * size;
        a.matmul(b).Dispose();
        Synchronize(device);
        var best = 0.0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < seconds)
        {
            var watch = Stopwatch.StartNew();
            a.matmul(b).Dispose();
            Synchronize(device);
            best = Math.Max(best, flops / watch.Elapsed.TotalSeconds / 1e9);
        }

        return best;
    }

    public static void Synchronize(Device device)
    {
        if (device.type == TorchSharp.DeviceType.CUDA)
        {
            cuda.synchronize(device);
        }
    }
}
