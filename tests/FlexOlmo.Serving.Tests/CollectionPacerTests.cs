namespace FlexOlmo.Serving.Tests;

public sealed class CollectionPacerTests
{
    [Fact]
    public void AfterStep_CollectsGenerationZero_EachTimeTheBytesHaveBeenAllocated()
    {
        var allocated = 1000L;
        var pacer = new CollectionPacer(100, () => allocated);
        var before = GC.CollectionCount(0);

        allocated += 99;
        Assert.False(pacer.AfterStep());
        allocated += 1;
        Assert.True(pacer.AfterStep());
        Assert.True(GC.CollectionCount(0) > before);
        allocated += 50;
        Assert.False(pacer.AfterStep()); // counted from the collection, not from the start
        allocated += 50;
        Assert.True(pacer.AfterStep());
    }
}
