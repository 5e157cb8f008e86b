using FlexOlmo.Core.Checkpoints;
using FlexOlmo.Core.Modeling;
using FlexOlmo.Testing;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Generation;

public sealed class RowDecodingTests
{
    [Fact]
    public void ForwardRows_InRowInvariantMode_GivesEachSequenceBitIdenticalLogitsToDecodingItAlone()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var prompts = new[] { reference.InputIds[0][..5], reference.InputIds[1][..9], reference.InputIds[0][3..14] };
        var masks = new[] { ExpertSet.All(4), ExpertSet.Exclude(4, [3]), ExpertSet.Include(4, [0, 2]) };
        var alone = prompts.Select((p, i) => Decode(model, [p], [masks[i]])[0]).ToArray();

        var together = Decode(model, prompts, masks);

        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(alone[i], together[i]); // exact float equality, step by step
        }
    }

    [Fact]
    public void ForwardRows_MatchesTheBatchedForwardOfASingleSequence()
    {
        var reference = HfReference.Load("olmo2-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        using var ids = tensor(reference.InputIds[0], [1, 16]);
        using var cacheA = model.CreateCache(1, 4);
        using var cacheB = model.CreateCache(1, 4);
        model.Forward(ids.narrow(1, 0, 8), new ForwardOptions { Cache = cacheA }).Dispose();
        model.Forward(ids.narrow(1, 0, 8), new ForwardOptions { Cache = cacheB }).Dispose();
        for (var t = 8; t < 16; t++)
        {
            using var viaForward = model.Forward(ids.narrow(1, t, 1), new ForwardOptions { Cache = cacheA });
            using var viaRows = model.ForwardRows(ids.narrow(1, t, 1), tensor(new long[] { t }).view(1, 1), [cacheB]);
            Assert.True(viaForward.eq(viaRows).all().item<bool>(), $"step {t}");
        }
    }

    [Fact]
    public void ForwardRows_APromptChunkBesideDecodingRowsAndOtherChunks_GetsBitIdenticalLogitsAndCacheToItsPassAlone()
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        // Each sequence: tokens already cached (prefilled alone), then the tokens of this pass (1 = a decoding row).
        var sequences = new (long[] Cached, long[] New, ExpertSet Experts)[]
        {
            (reference.InputIds[0][..5], reference.InputIds[0][5..6], ExpertSet.All(4)),
            ([], reference.InputIds[1][..9], ExpertSet.Exclude(4, [3])),
            (reference.InputIds[0][..4], reference.InputIds[0][4..10], ExpertSet.Include(4, [0, 2])),
        };
        var alone = sequences.Select(s => Pass(model, [s])).ToArray();

        var together = Pass(model, sequences);

        for (var i = 0; i < sequences.Length; i++)
        {
            Assert.Equal(alone[i].Logits[0], together.Logits[i]);
            Assert.Equal(alone[i].Keys[0], together.Keys[i]);
        }
    }

    [Theory]
    [InlineData(new[] { 14 })]
    [InlineData(new[] { 5, 9 })]
    [InlineData(new[] { 3, 3, 3, 5 })]
    public void ForwardRows_APromptCutIntoAnyChunks_GetsBitIdenticalLogitsAndCacheToDecodingItTokenByToken(int[] chunks)
    {
        var reference = HfReference.Load("flexolmo-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        var prompt = reference.InputIds[0][..14];
        var tokenByToken = Prefill(model, prompt, Enumerable.Repeat(1, prompt.Length).ToArray());

        var chunked = Prefill(model, prompt, chunks);

        Assert.Equal(tokenByToken.Logits, chunked.Logits); // exact float equality, the last position's logits
        Assert.Equal(tokenByToken.Keys, chunked.Keys);
    }

    [Fact]
    public void ForwardRows_RefusesTokenCounts_ThatDoNotAddUpToItsRows()
    {
        var reference = HfReference.Load("olmo2-tiny");
        using var model = CheckpointLoader.Load(reference.Folder, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        using var cache = model.CreateCache(1, 8);
        var error = Assert.Throws<ArgumentException>(() => model.ForwardRows(tensor(new long[] { 3, 4, 5 }, [3, 1]), tensor(new long[] { 0, 1, 2 }, [3, 1]), [cache], tokens: [2]));
        Assert.Contains("3 rows", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Caches each sequence's first tokens alone, then runs all their new tokens in one pass; returns each sequence's
    /// logits and its cached keys of every layer afterwards.
    /// </summary>
    private static (List<float[]> Logits, List<float[]> Keys) Pass(Olmo2ForCausalLM model, (long[] Cached, long[] New, ExpertSet Experts)[] sequences)
    {
        using var scope = NewDisposeScope();
        var caches = sequences.Select(_ => model.CreateCache(1, 16)).ToArray();
        for (var i = 0; i < sequences.Length; i++)
        {
            if (sequences[i].Cached.Length > 0)
            {
                using var bias = ExpertMask.ToRouterBias([sequences[i].Experts], 4, CPU);
                model.Forward(tensor(sequences[i].Cached, [1, sequences[i].Cached.Length]), new ForwardOptions { Cache = caches[i], ExpertBias = bias, LastTokenOnly = true }).Dispose();
            }
        }

        var ids = sequences.SelectMany(s => s.New).ToArray();
        var positions = sequences.SelectMany(s => Enumerable.Range(s.Cached.Length, s.New.Length).Select(p => (long)p)).ToArray();
        var rowBias = ExpertMask.ToRouterBias(sequences.SelectMany(s => Enumerable.Repeat(s.Experts, s.New.Length)).ToArray(), 4, CPU); // [R, E]
        var logits = model.ForwardRows(tensor(ids, [ids.Length, 1]), tensor(positions, [ids.Length, 1]), caches, rowBias, null, LinearMode.RowInvariant, sequences.Select(s => s.New.Length).ToArray()); // [S, 1, V]
        Assert.All(caches.Zip(sequences), c => Assert.Equal(c.Second.Cached.Length + c.Second.New.Length, c.First.Length));
        var keys = caches.Select(c => Enumerable.Range(0, c.Layers).SelectMany(l => c.Buffers(l).Keys.narrow(2, 0, c.Length).contiguous().data<float>().ToArray()).ToArray()).ToList();
        return (Enumerable.Range(0, sequences.Length).Select(i => logits[i, 0].data<float>().ToArray()).ToList(), keys);
    }

    /// <summary>
    /// Runs <paramref name="prompt"/> through one sequence's cache in passes of <paramref name="chunks"/> tokens each, as the
    /// server and <c>generate</c> prefill; returns the last pass's logits and the cached keys of every layer.
    /// </summary>
    private static (float[] Logits, float[] Keys) Prefill(Olmo2ForCausalLM model, long[] prompt, int[] chunks)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var cache = model.CreateCache(1, 16);
        var logits = empty(0);
        var start = 0;
        foreach (var length in chunks)
        {
            var positions = Enumerable.Range(start, length).Select(p => (long)p).ToArray();
            logits = model.ForwardRows(tensor(prompt[start..(start + length)], [length, 1]), tensor(positions, [length, 1]), [cache], null, null, LinearMode.RowInvariant, [length]); // [1, 1, V]
            start += length;
        }

        Assert.Equal(prompt.Length, start);
        var keys = Enumerable.Range(0, cache.Layers).SelectMany(l => cache.Buffers(l).Keys.narrow(2, 0, cache.Length).contiguous().data<float>().ToArray()).ToArray();
        return (logits[0, 0].data<float>().ToArray(), keys);
    }

    /// <summary>Prefills each prompt alone, then decodes all of them together, greedily, for 6 steps; returns each row's logits.</summary>
    private static List<float[]> Decode(Olmo2ForCausalLM model, long[][] prompts, ExpertSet[] masks)
    {
        using var noGrad = no_grad();
        var caches = prompts.Select(_ => model.CreateCache(1, 8)).ToArray();
        var next = new long[prompts.Length];
        var positions = new long[prompts.Length];
        var logits = prompts.Select(_ => new List<float>()).ToList();
        for (var i = 0; i < prompts.Length; i++)
        {
            using var bias = ExpertMask.ToRouterBias([masks[i]], 4, CPU);
            using var prefill = model.Forward(tensor(prompts[i], [1, prompts[i].Length]), new ForwardOptions { Cache = caches[i], ExpertBias = bias, LastTokenOnly = true });
            next[i] = prefill.argmax().item<long>();
            positions[i] = prompts[i].Length;
        }

        try
        {
            for (var step = 0; step < 6; step++)
            {
                using var bias = ExpertMask.ToRouterBias(masks, 4, CPU);
                using var output = model.ForwardRows(tensor(next, [prompts.Length, 1]), tensor(positions, [prompts.Length, 1]), caches, bias, linearMode: LinearMode.RowInvariant); // [R, 1, V]
                for (var i = 0; i < prompts.Length; i++)
                {
                    logits[i].AddRange(output[i, 0].data<float>().ToArray());
                    next[i] = output[i, 0].argmax().item<long>();
                    positions[i]++;
                }
            }
        }
        finally
        {
            foreach (var cache in caches)
            {
                cache.Dispose();
            }
        }

        return logits.Select(l => l.ToArray()).ToList();
    }
}
