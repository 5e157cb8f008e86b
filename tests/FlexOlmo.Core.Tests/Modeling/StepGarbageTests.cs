using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Modeling;

/// <summary>
/// What a server step leaves for the finalizer, counted by the collection after it: alone, so that no other test's
/// garbage is counted.
/// </summary>
[Collection(AloneCollection.Name)]
public sealed class StepGarbageTests
{
    [Fact]
    public void ForwardRows_OfDecodingRowsAndAPromptChunk_LeavesOnlyTheRoutersTopkForTheFinalizer()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        var layers = model.Config.NumHiddenLayers;
        var caches = Enumerable.Range(0, 4).Select(_ => model.CreateCache(1, 64)).ToList();
        using var bias = ExpertMask.ToRouterBias([ExpertSet.All(4), ExpertSet.Exclude(4, [3]), ExpertSet.Include(4, [0, 2]), ExpertSet.All(4), ExpertSet.All(4), ExpertSet.All(4), ExpertSet.All(4), ExpertSet.All(4)], 4, CPU)!; // [R, E]
        void Step()
        {
            using var scope = NewDisposeScope();
            foreach (var (cache, cached) in caches.Zip(new long[] { 5, 9, 3, 10 }))
            {
                cache.Truncate(0);
                cache.Advance(cached); // positions already cached: every row attends, the chunk over its cache with a mask
            }

            var ids = tensor(new long[] { 11, 12, 13, 14, 15, 16, 17, 18 }, [8L, 1L]); // [R, 1]
            var positions = tensor(new long[] { 5, 9, 3, 10, 11, 12, 13, 14 }, [8L, 1L]); // [R, 1]
            using var trace = new RouterTrace(recordLogits: false, countUsage: true);
            model.ForwardRows(ids, positions, caches, bias, trace, LinearMode.RowInvariant, [1, 1, 1, 5]);
        }

        Step(); // warm-up: first-call allocations are not per step
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        const int Steps = 50;
        for (var s = 0; s < Steps; s++)
        {
            Step();
        }

        GC.Collect();
        var left = GC.GetGCMemoryInfo(GCKind.Any).FinalizationPendingCount;
        GC.WaitForPendingFinalizers();
        foreach (var cache in caches)
        {
            cache.Dispose();
        }

        // One per layer: TorchSharp's topk leaves a finalizable helper, which no other call avoids; and a few that the
        // runtime makes once (measured: 4-13 in all). Before GarbageFreeOps a step of this kind left about 12 per layer.
        const int Once = 25;
        Assert.True(left <= (Steps * layers) + Once, $"{left} finalizable objects left by {Steps} steps of {layers} layers");
    }
}
