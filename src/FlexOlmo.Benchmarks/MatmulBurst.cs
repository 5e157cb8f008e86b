using System.Diagnostics;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Benchmarks;

/// <summary>
/// Square products of one size and dtype, kept between bursts so that a benchmark can measure the matmul throughput
/// right next to its own work: on a shared host the compute available moves from moment to moment (on a 2-core Zen 5
/// EPYC, a two-thread FMA loop ran at 33-413 GFLOP/s within one minute), so a baseline taken at another moment does not
/// compare. With <c>inference</c>, each product is the one the model's forward passes make without autograd
/// (<see cref="Olmo2Linear.Apply"/>: the decode kernel where it outruns libtorch, see <c>CpuGemv.OutrunsLibtorch</c>),
/// so that a prefill is compared with the best product this machine runs; otherwise libtorch's matmul.
/// </summary>
internal sealed class MatmulBurst : IDisposable
{
    private readonly Tensor _a;
    private readonly Tensor _b;
    private readonly Device _device;
    private readonly double _flops;
    private readonly bool _inference;

    public MatmulBurst(ScalarType dtype, Device device, int size = 2048, bool inference = false)
    {
        _device = device;
        _inference = inference;
        using (NewDisposeScope())
        {
            _a = randn([size, size], ScalarType.Float32, device).to(dtype).DetachFromDisposeScope(); // [S, S]
            _b = randn([size, size], ScalarType.Float32, device).to(dtype).DetachFromDisposeScope(); // [S, S]
        }

        _flops = 2.0 * size * size * size;
        Product(); // warm-up
    }

    /// <summary>Products for about <paramref name="seconds"/> (at least one): the mean GFLOP/s over the burst, and the best single product's.</summary>
    public (double Mean, double Best) Run(double seconds)
    {
        var best = 0.0;
        var products = 0;
        var total = Stopwatch.StartNew();
        do
        {
            var watch = Stopwatch.StartNew();
            Product();
            best = Math.Max(best, _flops / watch.Elapsed.TotalSeconds / 1e9);
            products++;
        }
        while (total.Elapsed.TotalSeconds < seconds);

        return (products * _flops / total.Elapsed.TotalSeconds / 1e9, best);
    }

    /// <summary>a b (libtorch's matmul) or a b^T (the inference product, b as a weight [out, in]): the same FLOPs.</summary>
    private void Product()
    {
        if (_inference)
        {
            using var noGrad = no_grad();
            Olmo2Linear.Apply(_a, _b).Dispose();
        }
        else
        {
            _a.matmul(_b).Dispose();
        }

        Baselines.Synchronize(_device);
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }
}
