using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Modeling;

public sealed class GarbageFreeOpsTests
{
    [Theory]
    [InlineData(0, 5)]
    [InlineData(1000, 1024)]
    [InlineData(7, 7)]
    public void Range_EqualsArange(long start, long stop)
    {
        using var scope = NewDisposeScope();

        var range = GarbageFreeOps.Range(start, stop, CPU);

        Assert.Equal(ScalarType.Int64, range.dtype);
        Assert.True(range.equal(arange(start, stop, ScalarType.Int64)).all().item<bool>());
    }

    [Fact]
    public void CatRows_EqualsCat_ForViewsAndASinglePart()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var a = randn(2, 3, 4); // [2, 3, 4]
        var b = randn(4, 1, 3).transpose(0, 2); // [3, 1, 4], not contiguous
        var c = randn(1, 3, 4).to(ScalarType.BFloat16).to(ScalarType.Float32); // [1, 3, 4]

        Assert.True(GarbageFreeOps.CatRows([a, b.expand(3, 3, 4), c]).equal(cat([a, b.expand(3, 3, 4), c], 0)).all().item<bool>());
        var single = GarbageFreeOps.CatRows([a]);
        Assert.True(single.equal(a).all().item<bool>());
    }

    [Fact]
    public void ToArray_EqualsTheTensorsElementsInRowMajorOrder_ForViews()
    {
        using var scope = NewDisposeScope();
        var longs = arange(0, 12, ScalarType.Int64).view(3, 4).transpose(0, 1); // [4, 3]: 0 4 8 / 1 5 9 / ...
        var floats = tensor(new[] { 0.5f, -1f, float.NaN, 3f }).view(2, 2);

        Assert.Equal([0L, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], GarbageFreeOps.ToArray<long>(longs));
        Assert.Equal([0.5f, -1f, float.NaN, 3f], GarbageFreeOps.ToArray<float>(floats));
    }

    [Fact]
    public void AddAndAddInto_EqualPlus_WithBroadcasting()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        var a = randn(3, 4).to(ScalarType.BFloat16);
        var b = randn(1, 4).to(ScalarType.BFloat16);

        Assert.True(GarbageFreeOps.Add(a, b).equal(a + b).all().item<bool>());
        var target = a.clone();
        Assert.Same(target, GarbageFreeOps.AddInto(target, b));
        Assert.True(target.equal(a + b).all().item<bool>());
    }
}
