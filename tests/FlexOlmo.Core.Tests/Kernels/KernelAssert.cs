using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

/// <summary>How far a kernel's result is from libtorch's: the largest absolute difference over the largest reference value.</summary>
internal static class KernelAssert
{
    public static void Close(Tensor actual, Tensor expected, double tolerance)
    {
        Assert.Equal(expected.shape, actual.shape);
        var error = (actual.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().max().item<float>() / expected.to(ScalarType.Float32).abs().max().item<float>();
        Assert.True(error < tolerance, $"relative error {error:E2}, tolerance {tolerance:E0}");
    }
}
