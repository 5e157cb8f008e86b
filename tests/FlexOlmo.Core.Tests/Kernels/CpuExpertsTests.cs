using System.Text.Json.Nodes;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class CpuExpertsTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 1, LinearMode.Batched, false, 2)]
    [InlineData(ScalarType.Float32, 16, LinearMode.Batched, true, 2)]
    [InlineData(ScalarType.Float32, 40, LinearMode.RowInvariant, false, 2)]
    [InlineData(ScalarType.BFloat16, 1, LinearMode.Batched, true, 2)]
    [InlineData(ScalarType.BFloat16, 7, LinearMode.Batched, false, 2)]
    [InlineData(ScalarType.BFloat16, 16, LinearMode.Batched, true, 2)]
    [InlineData(ScalarType.BFloat16, 40, LinearMode.RowInvariant, true, 2)]
    [InlineData(ScalarType.BFloat16, 1, LinearMode.Batched, false, 4)] // three or more contributions: index_add_ sums them in fp32 and rounds once
    [InlineData(ScalarType.BFloat16, 16, LinearMode.Batched, false, 3)]
    public void MoeForward_OnTheManagedExperts_EqualsTheLibtorchDispatch_BitForBit(ScalarType dtype, int tokens, LinearMode mode, bool masked, int topK)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(21);
        var block = Block(dtype, topK);
        var x = randn([tokens, 1, Hidden]).to(dtype); // [B, T, H]
        var bias = masked ? Mask(tokens) : null; // [B, E]
        Assert.True(Applies(block, x, bias, mode, topK), "the managed experts must take this case, or the test compares the dispatch with itself");

        var managed = block.Forward(x, bias, null, mode);
        block.ManagedExperts = false;
        var dispatched = block.Forward(x, bias, null, mode);

        Assert.Equal(dtype, managed.dtype);
        AssertSameBits(managed, dispatched);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 300, false, 2)] // a prefill: more pairs than the managed experts take
    [InlineData(ScalarType.BFloat16, 300, true, 2)]
    [InlineData(ScalarType.BFloat16, 200, false, 3)] // three contributions per token: summed in fp32, rounded once
    [InlineData(ScalarType.BFloat16, 90, true, 4)]
    public void MoeForward_OfAPrefill_WithTheManagedSum_EqualsTheLibtorchDispatch_BitForBit(ScalarType dtype, int tokens, bool masked, int topK)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(25);
        var block = Block(dtype, topK);
        var x = randn([tokens, 1, Hidden]).to(dtype); // [B, T, H]
        var bias = masked ? Mask(tokens) : null; // [B, E]
        Assert.False(Applies(block, x, bias, LinearMode.Batched, topK), "a prefill-sized batch goes to the dispatch");

        var managed = block.Forward(x, bias, null, LinearMode.Batched);
        block.ManagedExperts = false;
        var dispatched = block.Forward(x, bias, null, LinearMode.Batched);

        Assert.Equal(dtype, managed.dtype);
        AssertSameBits(managed, dispatched);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Sum_OfTheExpertsOutputs_IsEachContributionRoundedThenTheFp32SumRoundedOnce(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(26);
        const int Tokens = 700; // enough outputs to split the tokens over the cores
        var block = Block(dtype, topK: 3);
        var flat = randn([Tokens, Hidden]).to(dtype); // [N, H]
        var bias = Mask(Tokens); // [N, E]
        bias[0].fill_(float.NegativeInfinity); // a token opted out of every expert: NaN weights, kept as the dispatch keeps them
        var routes = Routes(block, flat, bias, topK: 3);
        var outputs = routes.PerExpert.Select(count => count == 0 ? null : randn([count, Hidden]).to(dtype)).ToArray(); // [rows_e, H]
        Assert.True(CpuExperts.SumApplies(flat, outputs, routes));

        var actual = CpuExperts.Sum(routes, outputs, Tokens, Hidden, dtype); // [N, H]

        var expected = zeros([Tokens, Hidden], ScalarType.Float32); // each token's contributions summed in fp32 from zero
        var pair = 0;
        for (var e = 0; e < Experts; e++)
        {
            for (var r = 0; r < routes.PerExpert[e]; r++, pair++)
            {
                var contribution = (outputs[e]![r].to(ScalarType.Float32) * routes.Weight[pair]).to(dtype).to(ScalarType.Float32); // [H]
                expected[routes.Token[pair]].add_(contribution); // pairs in expert order, as index_add_ adds them
            }
        }

        AssertSameBits(actual, expected.to(dtype));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Forward_OnTheAvx2Path_EqualsTheAvx512Tiles_BitForBit(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(22);
        var block = Block(dtype);
        var flat = randn([9, Hidden]).to(dtype); // [N, H]
        var routes = Routes(block, flat, null);

        var tiles = CpuExperts.Forward(flat, block.Experts, routes, tiles: true);
        var avx2 = CpuExperts.Forward(flat, block.Experts, routes, tiles: false);

        Assert.True(tiles.equal(avx2).all().item<bool>());
    }

    [Fact]
    public void Applies_IsFalse_WhereAnExpertsProductsWouldNotRunOnTheKernel()
    {
        using var scope = NewDisposeScope();
        manual_seed(23);
        var block = Block(ScalarType.Float32);
        using (no_grad())
        {
            // 40 copies of one row route alike, so their experts get more rows than a batched kernel call takes, whatever
            // the random values (libtorch's generator is shared with the tests that run beside this one).
            var many = randn([1, 1, Hidden]).repeat(40, 1, 1);
            Assert.False(Applies(block, many, null, LinearMode.Batched));
            Assert.True(Applies(block, many, null, LinearMode.RowInvariant));
        }

        Assert.False(Applies(block, randn([2, 1, Hidden]), null, LinearMode.Batched)); // autograd on
    }

    [Fact]
    public void MoeForward_WithEveryExpertMaskedForAToken_EqualsTheDispatch_NaNsIncluded()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(24);
        var block = Block(ScalarType.Float32);
        var x = randn([3, 1, Hidden]);
        var inf = float.NegativeInfinity;
        var bias = tensor(new[]
        {
            0, 0, 0, 0, 0, 0,
            inf, inf, inf, inf, inf, inf, // opted out of everything: the softmax gives NaN weights, which are kept as in the dispatch
            inf, inf, inf, inf, inf, 0, // one expert left
        }, [3, Experts]);

        var managed = block.Forward(x, bias, null, LinearMode.Batched);
        block.ManagedExperts = false;
        var dispatched = block.Forward(x, bias, null, LinearMode.Batched);

        Assert.True(managed[1].isnan().all().item<bool>(), "a token with no expert left has NaN weights in both paths");
        Assert.Equal(managed.isnan().sum().item<long>(), dispatched.isnan().sum().item<long>());
        Assert.True(managed.nan_to_num().equal(dispatched.nan_to_num()).all().item<bool>());
    }

    /// <summary>
    /// Equal bits, NaN included: a token whose every expert the random mask takes off (about one in 550 here) has NaN
    /// weights, and so NaN outputs, in both paths.
    /// </summary>
    private static void AssertSameBits(Tensor actual, Tensor expected)
    {
        Assert.True(actual.isnan().equal(expected.isnan()).all().item<bool>(), "NaN in different places");
        Assert.True(actual.nan_to_num().equal(expected.nan_to_num()).all().item<bool>(), $"largest difference {(actual.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).nan_to_num().abs().max().item<float>():E2}");
    }

    private const int Hidden = 130; // not a multiple of the vector widths: the scalar tails run
    private const int Experts = 6;

    private static FlexOlmoSparseMoeBlock Block(ScalarType dtype, int topK = 2)
    {
        var config = ModelConfig.FromJson(JsonNode.Parse($$"""
            {"model_type":"flex_olmo","vocab_size":64,"hidden_size":{{Hidden}},"intermediate_size":1202,"num_hidden_layers":1,
             "num_attention_heads":5,"num_local_experts":{{Experts}},"num_experts_per_tok":{{topK}}}
            """)!.AsObject(), "test.json"); // 1202 columns: silu·up's scalar tail, and enough weight to run over the cores
        var block = new FlexOlmoSparseMoeBlock(config, CPU, dtype);
        using var noGrad = no_grad();
        foreach (var (_, parameter) in block.named_parameters())
        {
            parameter.normal_(0, 0.1);
        }

        return block;
    }

    /// <summary>About a third of the experts off, per row: [B, E] of 0 and -inf.</summary>
    private static Tensor Mask(int rows) => where(rand([rows, Experts]) < 0.35, float.NegativeInfinity, 0f);

    private static bool Applies(FlexOlmoSparseMoeBlock block, Tensor x, Tensor? bias, LinearMode mode, int topK = 2)
    {
        var flat = x.reshape(-1, Hidden); // [N, H]
        return CpuExperts.Applies(flat, block.Experts, Routes(block, flat, bias, topK), Olmo2Linear.RowInvariant(flat, mode));
    }

    /// <summary>The block's own routing of <paramref name="flat"/>: softmax over the masked router logits in fp32, then top-k.</summary>
    private static ExpertRoutes Routes(FlexOlmoSparseMoeBlock block, Tensor flat, Tensor? bias, int topK = 2)
    {
        var logits = block.Gate.Compute(flat, LinearMode.Batched).to(ScalarType.Float32);
        var probabilities = (bias is null ? logits : logits + bias).softmax(-1, ScalarType.Float32);
        var (weights, indices) = probabilities.topk(topK, -1);
        return ExpertRoutes.Of(indices, weights, Experts);
    }
}
