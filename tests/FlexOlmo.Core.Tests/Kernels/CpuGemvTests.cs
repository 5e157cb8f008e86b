using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class CpuGemvTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 1, 1e-5)]
    [InlineData(ScalarType.Float32, 3, 1e-5)]
    [InlineData(ScalarType.Float32, 16, 1e-5)]
    [InlineData(ScalarType.BFloat16, 1, 1e-2)]
    [InlineData(ScalarType.BFloat16, 16, 1e-2)]
    public void Linear_MatchesLibtorch_ForDecodeSizedInputs(ScalarType dtype, int rows, double tolerance)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(5);
        var weight = randn([777, 1030]).to(dtype); // odd sizes exercise the scalar tails
        var input = randn([rows, 1, 1030]).to(dtype);
        Assert.True(CpuGemv.Applies(input, weight));

        var expected = nn.functional.linear(input, weight).to(ScalarType.Float32);
        var actual = CpuGemv.Linear(input, weight);

        Assert.Equal(dtype, actual.dtype);
        KernelAssert.Close(actual, expected, tolerance);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 2)] // one tile of two input rows
    [InlineData(ScalarType.BFloat16, 3)] // one tile of three
    [InlineData(ScalarType.Float32, 7)]
    [InlineData(ScalarType.Float32, 16)]
    [InlineData(ScalarType.BFloat16, 5)]
    [InlineData(ScalarType.BFloat16, 16)]
    [InlineData(ScalarType.Float32, 133)] // a prompt chunk beside decoding rows, as the server runs them
    [InlineData(ScalarType.BFloat16, 70)]
    public void Linear_OfSeveralRows_EqualsEachRowAlone_BitForBit(ScalarType dtype, int rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(6);
        var weight = randn([777, 1030]).to(dtype); // outputs not a multiple of the tile, inputs not of the vector width
        var input = randn([rows, 1030]).to(dtype);

        var together = CpuGemv.Linear(input, weight);
        var alone = cat(Enumerable.Range(0, rows).Select(r => CpuGemv.Linear(input.narrow(0, r, 1), weight)).ToArray(), 0);

        Assert.True(together.equal(alone).all().item<bool>(), $"{dtype}, {rows} rows: a row's result depends on the rows beside it");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1)]
    [InlineData(ScalarType.Float32, 3)]
    [InlineData(ScalarType.Float32, 7)]
    [InlineData(ScalarType.BFloat16, 1)]
    [InlineData(ScalarType.BFloat16, 2)]
    [InlineData(ScalarType.BFloat16, 6)]
    public void Linear_OnTheAvx2Path_EqualsTheAvx512Tiles_BitForBit(ScalarType dtype, int rows)
    {
        // A CPU with AVX-512 computes every call on the tiles, one without it on the AVX2 path: one arithmetic for both.
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(9);
        var weight = randn([777, 1030]).to(dtype);
        var input = randn([rows, 1030]).to(dtype);

        var tiles = CpuGemv.Linear(input, [weight], tiles: true)[0];
        var avx2 = CpuGemv.Linear(input, [weight], tiles: false)[0];

        Assert.True(tiles.equal(avx2).all().item<bool>(), $"{dtype}, {rows} rows: the AVX2 path and the tiles differ");
    }

    [Fact]
    public void RowInvariantLinear_OfMoreRowsThanOneKernelCall_EqualsEachRowAlone_BitForBit()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(8);
        var weight = randn([70, 1030]);
        var rows = CpuGemv.MaxRowsRowInvariant + 37;
        var input = randn([rows, 1, 1030]);
        Assert.False(CpuGemv.Applies(input, weight, rowInvariant: true)); // too many rows for one call: split into slabs

        var together = Olmo2Linear.Apply(input, weight, LinearMode.RowInvariant); // [M, 1, 70]
        var alone = cat(Enumerable.Range(0, rows).Select(r => CpuGemv.Linear(input.narrow(0, r, 1), weight)).ToArray(), 0);

        Assert.True(together.equal(alone).all().item<bool>(), "a row's result depends on the rows beside it");
    }

    [Fact]
    public void BatchedLinear_OfManyFp32Rows_RunsOnTheKernel_WhereItOutrunsLibtorch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(9);
        var weight = randn([70, 1030]);
        var rows = CpuGemv.MaxRowsRowInvariant + 37; // a prefill: more rows than one kernel call takes
        var input = randn([rows, 1, 1030]);

        var batched = Olmo2Linear.Apply(input, weight, LinearMode.Batched); // [M, 1, 70]

        KernelAssert.Close(batched, nn.functional.linear(input, weight), 1e-5);
        Assert.False(CpuGemv.OutrunsLibtorch(ScalarType.BFloat16)); // libtorch's bf16 product uses the bf16 dot-product instruction
        if (CpuGemv.OutrunsLibtorch(ScalarType.Float32))
        {
            var alone = cat(Enumerable.Range(0, rows).Select(r => CpuGemv.Linear(input.narrow(0, r, 1), weight)).ToArray(), 0);
            Assert.True(batched.equal(alone).all().item<bool>(), "a batched fp32 prefill did not run on the kernel, row by row as alone");
        }
    }

    [Theory]
    [InlineData(LinearMode.Batched)]
    [InlineData(LinearMode.RowInvariant)]
    public void Linear_OfAnExpandedInputOfManyRows_MatchesLibtorch(LinearMode mode)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(10);
        var weight = randn([70, 1030]);
        var input = randn([1, 1030]).expand(CpuGemv.MaxRowsRowInvariant + 37, 1030); // one row repeated with a stride of 0: its first row is contiguous, its slabs are not

        var actual = Olmo2Linear.Apply(input, weight, mode); // [M, 70]

        KernelAssert.Close(actual, nn.functional.linear(input, weight), 1e-5);
        if (mode == LinearMode.RowInvariant)
        {
            var alone = CpuGemv.Linear(input.narrow(0, 0, 1), weight); // [1, 70]
            Assert.True(actual.equal(alone.expand_as(actual)).all().item<bool>(), "rows of the same input differ");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1)]
    [InlineData(ScalarType.Float32, 6)]
    [InlineData(ScalarType.BFloat16, 1)]
    [InlineData(ScalarType.BFloat16, 5)]
    public void Linear_OfSeveralWeightsInOnePass_EqualsEachWeightAlone_BitForBit(ScalarType dtype, int rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(7);
        Tensor[] weights = [randn([777, 1030]).to(dtype), randn([260, 1030]).to(dtype), randn([1501, 1030]).to(dtype)];
        var input = randn([rows, 1, 1030]).to(dtype);

        var together = CpuGemv.Linear(input, weights);

        Assert.Equal(weights.Length, together.Length);
        for (var j = 0; j < weights.Length; j++)
        {
            var alone = CpuGemv.Linear(input, weights[j]);
            Assert.Equal(new long[] { rows, 1, weights[j].shape[0] }, together[j].shape);
            Assert.True(together[j].equal(alone).all().item<bool>(), $"weight {j}: one pass differs from the weight alone");
        }
    }

    [Fact]
    public void Applies_OnlyWithoutAutogradAndForSmallInputs()
    {
        using var scope = NewDisposeScope();
        var weight = randn([777, 1030]);
        Assert.False(CpuGemv.Applies(randn([1, 1030]), weight)); // autograd on
        using var noGrad = no_grad();
        Assert.True(CpuGemv.Applies(randn([1, 1030]), weight));
        Assert.False(CpuGemv.Applies(randn([17, 1030]), weight));
        Assert.True(CpuGemv.Applies(randn([16, 1030]).to(ScalarType.BFloat16), weight.to(ScalarType.BFloat16))); // bf16 takes as many rows as fp32
        Assert.False(CpuGemv.Applies(randn([17, 1030]).to(ScalarType.BFloat16), weight.to(ScalarType.BFloat16)));
        Assert.True(CpuGemv.Applies(randn([1, 64]), randn([64, 64]))); // small weights too, computed on the calling thread alone
        Assert.False(CpuGemv.Applies(randn([1030, 2]).t(), weight)); // a non-contiguous input of two rows
        Assert.False(CpuGemv.Applies(randn([1, 2060]), weight)); // widths that differ: libtorch's error, never a read past the input
    }

    [Fact]
    public void Linear_OfASmallWeight_OnTheCallingThread_MatchesLibtorch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(8);
        var weight = randn([8, 100]); // a router: far below the size that is split over the cores
        var input = randn([3, 100]);

        var expected = nn.functional.linear(input, weight);
        var actual = CpuGemv.Linear(input, weight);

        Assert.True((actual - expected).abs().max().item<float>() < 1e-5f);
    }
}
