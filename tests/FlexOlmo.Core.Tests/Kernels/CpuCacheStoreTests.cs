using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class CpuCacheStoreTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 1, 4, 1, 0)] // a decode step's first position
    [InlineData(ScalarType.Float32, 3, 2, 1, 17)] // a batch's step, as a view of [B, 1, K, D] with its heads moved forward
    [InlineData(ScalarType.BFloat16, 2, 4, 1, 30)]
    [InlineData(ScalarType.Float32, 2, 3, 5, 26)] // several contiguous tokens, up to the last position the buffer holds
    public void Write_LeavesTheBufferAsLibtorchsCopy_BitForBit(ScalarType dtype, int batch, int kvHeads, int tokens, int position)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(3);
        const int Dim = 64;
        const int Capacity = 31;
        var buffer = randn([batch, kvHeads, Capacity, Dim]).to(dtype); // [B, K, C, D]
        var source = tokens == 1
            ? randn([batch, 1, kvHeads, Dim]).to(dtype).transpose(1, 2) // [B, K, 1, D], as the attention hands it over
            : randn([batch, kvHeads, tokens, Dim]).to(dtype);
        var expected = buffer.clone();
        expected.narrow(2, position, tokens).copy_(source);

        Assert.True(CpuCacheStore.Applies(buffer, position, source));
        CpuCacheStore.Write(buffer, position, source);

        Assert.True(buffer.equal(expected).all().item<bool>(), "the buffer differs from libtorch's copy"); // finite values: equal means the same bits
    }

    [Fact]
    public void Applies_IsFalse_WhereLibtorchMustCopyOrReportTheMismatch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var buffer = zeros([2, 4, 10, 8]); // [B, K, C, D]

        Assert.True(CpuCacheStore.Applies(buffer, 9, zeros([2, 4, 1, 8])));
        Assert.False(CpuCacheStore.Applies(buffer, 10, zeros([2, 4, 1, 8])), "past the buffer's capacity");
        Assert.False(CpuCacheStore.Applies(buffer, -1, zeros([2, 4, 1, 8])), "a negative position");
        Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([2, 3, 4, 8]).transpose(1, 2)), "a chunk's strided view");
        Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([2, 4, 1, 8], ScalarType.BFloat16)), "another dtype");
        Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([1, 4, 1, 8])), "another batch");
        Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([2, 2, 1, 8])), "other heads");
        Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([2, 4, 1, 4])), "another head dim");
        Assert.False(CpuCacheStore.Applies(buffer.narrow(2, 0, 5), 0, zeros([2, 4, 1, 8])), "a buffer that is itself a view");
        using (enable_grad())
        {
            Assert.False(CpuCacheStore.Applies(buffer, 0, zeros([2, 4, 1, 8])), "autograd on");
        }
    }

    [Fact]
    public void KvCache_Store_KeepsWhatEachStepWrote_AcrossGrowth()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(5);
        using var cache = new KvCache(layers: 1, batch: 2, kvHeads: 2, headDim: 8, capacity: 2, ScalarType.Float32, CPU);
        var steps = Enumerable.Range(0, 5).Select(_ => (Keys: randn([2, 2, 1, 8]), Values: randn([2, 2, 1, 8]))).ToList();
        foreach (var (keys, values) in steps)
        {
            cache.Store(0, keys, values);
            cache.Advance(1);
        }

        var (storedKeys, storedValues) = cache.Through(0, 0); // [2, 2, 5, 8]
        Assert.True(storedKeys.equal(cat(steps.Select(s => s.Keys).ToArray(), 2)).all().item<bool>());
        Assert.True(storedValues.equal(cat(steps.Select(s => s.Values).ToArray(), 2)).all().item<bool>());
    }
}
