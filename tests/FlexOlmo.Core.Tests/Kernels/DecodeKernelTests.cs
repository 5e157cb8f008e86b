using System.Runtime.Intrinsics;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

public sealed class DecodeKernelTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 1, 4, 4, 37, 2e-6)] // keys not a multiple of the vector width
    [InlineData(ScalarType.Float32, 3, 8, 2, 300, 2e-6)] // grouped-query heads
    [InlineData(ScalarType.Float32, 2, 16, 16, 5000, 1e-5)] // long enough to split the heads over the cores; sums of 5,000 fp32 terms in two orders (2.1e-6 apart on a Xeon's libtorch)
    [InlineData(ScalarType.BFloat16, 2, 4, 2, 130, 1e-2)]
    public void Attention_MatchesLibtorchSdpa_OverTheCachedPrefix(ScalarType dtype, int batch, int heads, int kvHeads, int length, double tolerance)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(11);
        const int Dim = 64;
        var keys = randn([batch, kvHeads, length + 9, Dim]).to(dtype); // [B, K, C, D]: 9 positions past the prefix are ignored
        var values = randn([batch, kvHeads, length + 9, Dim]).to(dtype);
        var query = randn([batch, heads, 1, Dim]).to(dtype);
        Assert.True(CpuDecodeAttention.Applies(query, keys, values, length));

        var k = keys.narrow(2, 0, length).repeat_interleave(heads / kvHeads, 1); // [B, N, S, D]
        var v = values.narrow(2, 0, length).repeat_interleave(heads / kvHeads, 1);
        var expected = nn.functional.scaled_dot_product_attention(query.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32));
        var actual = CpuDecodeAttention.Attend(query, keys, values, length);

        Assert.Equal(dtype, actual.dtype);
        KernelAssert.Close(actual, expected, tolerance);
    }

    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    [InlineData(96)] // a 64-wide block and four of 8
    [InlineData(8)]
    [InlineData(40)] // two blocks of 16 and one of 8 for the even chain
    public void Attention_IsBitForBitTwoChainsPerScoreAndOnePerOutput_ForEveryCountOfKeys(int dim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(14);
        foreach (var length in new[] { 1, 2, 3, 4, 5, 7, 8, 9, 300 })
        {
            var keys = randn([1, 1, length, dim]) * 4; // [1, K, S, D]: scores wide enough that the softmax is not flat
            var values = randn([1, 1, length, dim]);
            var query = randn([1, 1, 1, dim]);

            var actual = CpuDecodeAttention.Attend(query, keys, values, length).data<float>().ToArray();

            Assert.Equal(Reference(query.data<float>().ToArray(), keys.data<float>().ToArray(), values.data<float>().ToArray(), length, dim), actual);
        }
    }

    /// <summary>
    /// The kernel's arithmetic written plainly: per key, two 8-lane multiply-add chains over the head dim (the even
    /// blocks of 8 and the odd ones), added and summed across their lanes; the softmax's exponentials by
    /// <see cref="PolynomialExp"/>; per output element, one multiply-add chain over the keys in order; then the division by
    /// the total.
    /// </summary>
    private static float[] Reference(float[] q, float[] k, float[] v, int length, int dim)
    {
        var scale = (float)(1.0 / Math.Sqrt(dim));
        var scores = new float[length];
        var max = float.NegativeInfinity;
        for (var s = 0; s < length; s++)
        {
            var chains = new Vector256<float>[2]; // even, odd
            for (var d = 0; d < dim; d += 8)
            {
                chains[d / 8 % 2] = Vector256.FusedMultiplyAdd(Vector256.Create(q.AsSpan(d, 8)), Vector256.Create(k.AsSpan((s * dim) + d, 8)), chains[d / 8 % 2]);
            }

            scores[s] = Vector256.Sum(chains[0] + chains[1]) * scale;
            max = Math.Max(max, scores[s]);
        }

        var sums = Vector256<float>.Zero;
        var i = 0;
        for (; i + 8 <= length; i += 8)
        {
            var e = PolynomialExp.Exp8(Vector256.Create(scores.AsSpan(i, 8)) - Vector256.Create(max));
            e.CopyTo(scores.AsSpan(i, 8));
            sums += e;
        }

        var total = Vector256.Sum(sums);
        for (; i < length; i++)
        {
            scores[i] = PolynomialExp.Exp(scores[i] - max);
            total += scores[i];
        }

        var output = new float[dim];
        var inverse = Vector256.Create(1f / total);
        for (var d = 0; d < dim; d += 8)
        {
            var o = Vector256<float>.Zero;
            for (var s = 0; s < length; s++)
            {
                o = Vector256.FusedMultiplyAdd(Vector256.Create(scores[s]), Vector256.Create(v.AsSpan((s * dim) + d, 8)), o);
            }

            (o * inverse).CopyTo(output.AsSpan(d, 8));
        }

        return output;
    }

    [Theory]
    [InlineData(ScalarType.Float32, 5, 61)] // a task per head
    [InlineData(ScalarType.Float32, 16, 190)] // a task per row, split over the cores
    [InlineData(ScalarType.BFloat16, 16, 190)]
    public void Attention_OfSeveralRows_EqualsEachRowAlone_BitForBit(ScalarType dtype, int rows, int length)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(12);
        var keys = randn([rows, 2, length + 9, 64]).to(dtype);
        var values = randn([rows, 2, length + 9, 64]).to(dtype);
        var query = randn([rows, 8, 1, 64]).to(dtype);

        var together = CpuDecodeAttention.Attend(query, keys, values, length);
        var alone = cat(Enumerable.Range(0, rows).Select(r => CpuDecodeAttention.Attend(query.narrow(0, r, 1), keys.narrow(0, r, 1).contiguous(), values.narrow(0, r, 1).contiguous(), length)).ToArray(), 0);

        Assert.True(together.equal(alone).all().item<bool>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    public void Attention_InBf16_IsTheFp32ArithmeticRoundedOnce_BitForBit(int rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(15);
        var keys = randn([rows, 2, 140, 64]).to(ScalarType.BFloat16);
        var values = randn([rows, 2, 140, 64]).to(ScalarType.BFloat16);
        var query = (randn([rows, 8, 1, 64]) * 3).to(ScalarType.BFloat16);

        var actual = CpuDecodeAttention.Attend(query, keys, values, 131);
        var widened = CpuDecodeAttention.Attend(query.to(ScalarType.Float32), keys.to(ScalarType.Float32), values.to(ScalarType.Float32), 131);

        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        Assert.True(actual.equal(widened.to(ScalarType.BFloat16)).all().item<bool>()); // bf16 widens exactly; one rounding, libtorch's
    }

    [Theory]
    [InlineData(ScalarType.Float32, 4, 4)]
    [InlineData(ScalarType.Float32, 8, 2)] // grouped-query heads
    [InlineData(ScalarType.BFloat16, 4, 2)]
    public void AttentionRows_EachRow_EqualsAOneTokenStepAtItsPosition_BitForBit_AndCausalSdpa(ScalarType dtype, int heads, int kvHeads)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(13);
        const int Dim = 64;
        // Three sequences: one decoding row after 40 cached keys, a chunk of 7 after 300, a first chunk of 5.
        var sequences = new[] { (Cached: 40, Tokens: 1), (Cached: 300, Tokens: 7), (Cached: 0, Tokens: 5) }
            .Select(s => new CachedSequence(randn([1, kvHeads, s.Cached + s.Tokens + 3, Dim]).to(dtype), randn([1, kvHeads, s.Cached + s.Tokens + 3, Dim]).to(dtype), s.Cached + s.Tokens, s.Tokens))
            .ToArray();
        var query = randn([13, heads, 1, Dim]).to(dtype); // [R, N, 1, D]
        Assert.True(CpuDecodeAttention.AppliesRows(query, sequences));

        var actual = CpuDecodeAttention.AttendRows(query, sequences); // [R, N, 1, D]

        Assert.Equal(dtype, actual.dtype);
        var row = 0;
        foreach (var s in sequences)
        {
            for (var t = 0; t < s.Tokens; t++, row++)
            {
                var step = CpuDecodeAttention.Attend(query.narrow(0, row, 1), s.Keys, s.Values, s.Length - s.Tokens + t + 1); // [1, N, 1, D]
                Assert.True(step.eq(actual.narrow(0, row, 1)).all().item<bool>(), $"row {row}");
            }

            var chunk = query.narrow(0, row - s.Tokens, s.Tokens).transpose(0, 2).to(ScalarType.Float32); // [1, N, T, D]
            var keys = s.Keys.narrow(2, 0, s.Length).repeat_interleave(heads / kvHeads, 1).to(ScalarType.Float32); // [1, N, S, D]
            var values = s.Values.narrow(2, 0, s.Length).repeat_interleave(heads / kvHeads, 1).to(ScalarType.Float32);
            var mask = arange(s.Length).unsqueeze(0).le(arange(s.Length - s.Tokens, s.Length).unsqueeze(1)); // [T, S]: token t sees its key and those before
            var expected = nn.functional.scaled_dot_product_attention(chunk, keys, values, mask).transpose(0, 2); // [T, N, 1, D]
            KernelAssert.Close(actual.narrow(0, row - s.Tokens, s.Tokens), expected, dtype == ScalarType.Float32 ? 2e-6 : 1e-2);
        }
    }

    [Fact]
    public void AttentionRows_DoNotApply_ToRowsThatDoNotMatchTheSequences_OrAChunkLongerThanItTakes()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var keys = zeros([1, 2, 100, 64]);
        var fits = new[] { new CachedSequence(keys, keys, 10, 3) };
        Assert.True(CpuDecodeAttention.AppliesRows(zeros([3, 2, 1, 64]), fits));
        Assert.False(CpuDecodeAttention.AppliesRows(zeros([4, 2, 1, 64]), fits)); // a row too many
        Assert.False(CpuDecodeAttention.AppliesRows(zeros([3, 2, 1, 64]), [new CachedSequence(keys, keys, 101, 3)])); // more keys than the buffer holds
        Assert.False(CpuDecodeAttention.AppliesRows(zeros([3, 2, 1, 64]), [new CachedSequence(keys, keys, 2, 3)])); // fewer keys than new tokens
        var chunk = CpuDecodeAttention.MaxTokensPerSequence + 1;
        Assert.False(CpuDecodeAttention.AppliesRows(zeros([chunk, 2, 1, 64]), [new CachedSequence(keys, keys, chunk, chunk)]));
        Assert.False(CpuDecodeAttention.AppliesRows(zeros([3, 2, 1, 64]), [new CachedSequence(zeros([2, 2, 100, 64]), zeros([2, 2, 100, 64]), 10, 3)])); // a cache of two rows
    }

    [Theory]
    [InlineData(ScalarType.Float32, 2, 4, 4, 0, 37, 64)] // a batch of two, no cache: a prefill
    [InlineData(ScalarType.BFloat16, 1, 8, 2, 0, 23, 64)] // grouped-query heads
    [InlineData(ScalarType.Float32, 1, 4, 2, 0, 19, 40)] // a head dim whose last block of 8 joins the even chain
    [InlineData(ScalarType.BFloat16, 2, 2, 2, 30, 9, 64)] // after 30 cached keys
    [InlineData(ScalarType.Float32, 1, 16, 16, 0, 300, 64)] // enough work to split over the cores
    public void AttentionCausal_EachToken_EqualsAOneTokenStepAtItsPosition_BitForBit_AndCausalSdpa(ScalarType dtype, int batch, int heads, int kvHeads, int cached, int tokens, int dim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(15);
        var length = cached + tokens;
        var keys = randn([batch, kvHeads, length + 5, dim]).to(dtype); // [B, K, C, D]: 5 positions past the keys are ignored
        var values = randn([batch, kvHeads, length + 5, dim]).to(dtype);
        var query = randn([batch, tokens, heads, dim]).to(dtype).transpose(1, 2); // [B, N, T, D], strided as a projection split into heads is
        Assert.True(CpuDecodeAttention.AppliesCausal(query, keys, values, length));

        var actual = CpuDecodeAttention.AttendCausal(query, keys, values, length); // [B, N, T, D]

        Assert.Equal(dtype, actual.dtype);
        for (var b = 0; b < batch; b++)
        {
            var rowKeys = keys.narrow(0, b, 1).contiguous();
            var rowValues = values.narrow(0, b, 1).contiguous();
            for (var t = 0; t < tokens; t++)
            {
                var step = CpuDecodeAttention.Attend(query.narrow(0, b, 1).narrow(2, t, 1), rowKeys, rowValues, cached + t + 1); // [1, N, 1, D]
                Assert.True(step.eq(actual.narrow(0, b, 1).narrow(2, t, 1)).all().item<bool>(), $"row {b}, token {t}");
            }
        }

        var k = keys.narrow(2, 0, length).repeat_interleave(heads / kvHeads, 1).to(ScalarType.Float32); // [B, N, S, D]
        var v = values.narrow(2, 0, length).repeat_interleave(heads / kvHeads, 1).to(ScalarType.Float32);
        var mask = arange(length).unsqueeze(0).le(arange(cached, length).unsqueeze(1)); // [T, S]: token t sees its key and those before
        var expected = nn.functional.scaled_dot_product_attention(query.to(ScalarType.Float32), k, v, mask); // [B, N, T, D]
        KernelAssert.Close(actual, expected, dtype == ScalarType.Float32 ? 2e-6 : 1e-2);
    }

    [Fact]
    public void AttentionCausal_AppliesToSeveralTokens_OnlyWhileAHeadsKeysAndValuesFitTheLimit()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var fp32Keys = CpuDecodeAttention.MaxCausalHeadBytes / (2 * 64 * 4); // 2,048 at D = 64
        var keys = zeros([1, 1, fp32Keys + 1, 64]);
        Assert.True(CpuDecodeAttention.AppliesCausal(zeros([1, 2, 8, 64]), keys, keys, fp32Keys));
        Assert.False(CpuDecodeAttention.AppliesCausal(zeros([1, 2, 8, 64]), keys, keys, fp32Keys + 1));
        Assert.True(CpuDecodeAttention.AppliesCausal(zeros([1, 2, 1, 64]), keys, keys, fp32Keys + 1)); // one token: a decode step at any length
        var bf16Keys = keys.to(ScalarType.BFloat16);
        Assert.True(CpuDecodeAttention.AppliesCausal(zeros([1, 2, 8, 64], ScalarType.BFloat16), bf16Keys, bf16Keys, fp32Keys + 1)); // half the bytes
        Assert.False(CpuDecodeAttention.AppliesCausal(zeros([1, 2, 8, 64]), keys, keys, 7)); // fewer keys than tokens
        Assert.False(CpuDecodeAttention.AppliesCausal(zeros([2, 2, 8, 64]), keys, keys, 8)); // a batch of two over a buffer of one
    }

    [Fact]
    public void Attention_DoesNotApply_WithAutogradOrSeveralQueries()
    {
        using var scope = NewDisposeScope();
        var keys = randn([1, 2, 8, 64]);
        Assert.False(CpuDecodeAttention.Applies(randn([1, 2, 1, 64]), keys, keys, 8)); // autograd on
        using var noGrad = no_grad();
        Assert.True(CpuDecodeAttention.Applies(randn([1, 2, 1, 64]), keys, keys, 8));
        Assert.False(CpuDecodeAttention.Applies(randn([1, 2, 3, 64]), keys, keys, 8));
        Assert.False(CpuDecodeAttention.Applies(randn([1, 2, 1, 64]), keys, keys, 9)); // more keys than the buffer holds
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1, 1e-6)]
    [InlineData(ScalarType.Float32, 16, 1e-6)]
    [InlineData(ScalarType.BFloat16, 3, 1e-2)]
    [InlineData(ScalarType.Float32, 300, 1e-6)] // a prefill: rows split over the cores
    [InlineData(ScalarType.BFloat16, 300, 1e-2)]
    public void RmsNorm_MatchesTheLibtorchOps_AndEachRowAlone_AtAnyNumberOfRows(ScalarType dtype, int rows, double tolerance)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(13);
        var input = randn([rows, 1, 1030]).to(dtype); // width not a multiple of the vector width
        var weight = (rand([1030]) + 0.5).to(dtype);
        Assert.True(CpuRmsNorm.Applies(input, weight));

        var x32 = input.to(ScalarType.Float32);
        var expected = weight.to(ScalarType.Float32) * (x32 * rsqrt(x32.pow(2).mean([-1], keepdim: true) + 1e-6));
        var actual = CpuRmsNorm.Apply(input, weight, 1e-6);

        Assert.Equal(dtype, actual.dtype);
        KernelAssert.Close(actual, expected, tolerance);
        foreach (var row in new[] { 0, rows / 2, rows - 1 })
        {
            Assert.True(CpuRmsNorm.Apply(input.narrow(0, row, 1), weight, 1e-6).equal(actual.narrow(0, row, 1)).all().item<bool>(), $"row {row} alone");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void Rotary_EqualsTheLibtorchOps_BitForBit(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(14);
        var rotary = new Olmo2RotaryEmbedding(64, 500000, CPU);
        var (cos, sin) = rotary.Compute(tensor(new long[] { 3, 1000, 77 }, [3, 1])); // [3, 1, 64]
        var x = randn([3, 6, 1, 64]).to(dtype);
        Assert.True(CpuRotary.Applies(x, cos, sin));

        var first = x.narrow(-1, 0, 32);
        var second = x.narrow(-1, 32, 32);
        var rotated = cat([second.neg(), first], -1);
        var expected = ((x * cos.unsqueeze(1)) + (rotated * sin.unsqueeze(1))).to(dtype);
        var actual = CpuRotary.Apply(x, cos, sin);

        Assert.Equal(dtype, actual.dtype);
        Assert.True(actual.equal(expected).all().item<bool>(), "the managed rotary must round exactly as the libtorch ops do");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 64)]
    [InlineData(ScalarType.BFloat16, 64)]
    [InlineData(ScalarType.BFloat16, 20)] // half the head dim not a multiple of the vector width: the scalar tail
    public void Rotary_OfAPrefillsHeads_EqualsTheLibtorchOps_BitForBit(ScalarType dtype, int dim)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(16);
        var rotary = new Olmo2RotaryEmbedding(dim, 500000, CPU);
        var (cos, sin) = rotary.Compute(arange(0, 300, ScalarType.Int64).view(2, 150)); // [2, 150, D]
        var x = randn([2, 150, 5, dim]).to(dtype).transpose(1, 2); // [2, 5, 150, D], the heads view of a projection
        Assert.True(CpuRotary.Applies(x, cos, sin));

        var half = dim / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        var expected = ((x * cos.unsqueeze(1)) + (rotated * sin.unsqueeze(1))).to(dtype);
        var actual = CpuRotary.Apply(x, cos, sin);

        Assert.Equal(dtype, actual.dtype);
        Assert.Equal(expected.stride(), actual.stride());
        Assert.True(actual.equal(expected).all().item<bool>(), "the managed rotary must round exactly as the libtorch ops do");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 1e-6)]
    [InlineData(ScalarType.BFloat16, 1e-2)]
    public void SwiGlu_MatchesLibtorchSiluTimesUp_AndEachRowIsItsOwn_AtAnyRowCount(ScalarType dtype, double tolerance)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(15);
        var gate = (randn([5, 1027]) * 4).to(dtype); // width not a multiple of the vector width
        var up = randn([5, 1027]).to(dtype);
        Assert.True(CpuSwiGlu.Applies(gate, up));

        var expected = (nn.functional.silu(gate) * up).to(ScalarType.Float32);
        var actual = CpuSwiGlu.Apply(gate, up);
        var alone = cat(Enumerable.Range(0, 5).Select(r => CpuSwiGlu.Apply(gate.narrow(0, r, 1), up.narrow(0, r, 1))).ToArray(), 0);

        Assert.Equal(dtype, actual.dtype);
        KernelAssert.Close(actual, expected, tolerance);
        Assert.True(actual.equal(alone).all().item<bool>());

        // A prefill's rows, split over the kernel threads: each as it is alone
        var manyGate = (randn([300, 1027]) * 4).to(dtype);
        var manyUp = randn([300, 1027]).to(dtype);
        Assert.True(CpuSwiGlu.Applies(manyGate, manyUp));
        var many = CpuSwiGlu.Apply(manyGate, manyUp);
        foreach (var row in new[] { 0, 97, 150, 299 })
        {
            Assert.True(many.narrow(0, row, 1).equal(CpuSwiGlu.Apply(manyGate.narrow(0, row, 1), manyUp.narrow(0, row, 1))).all().item<bool>());
        }

        KernelAssert.Close(many, (nn.functional.silu(manyGate) * manyUp).to(ScalarType.Float32), tolerance);
    }

    [Fact]
    public void BFloat16Bits_RoundsAsLibtorch_ForEveryKindOfValue()
    {
        using var scope = NewDisposeScope();
        float[] values = [0f, -0f, 1f, 1.00390625f, 1.0078125f, 1.01171875f, -3.14159f, 1e-40f, 3.4e38f, float.PositiveInfinity, float.NaN, 65504.7f];
        var expected = tensor(values).to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            var actual = BFloat16Bits.ToSingle(BFloat16Bits.FromSingle(values[i]));
            Assert.True(BitConverter.SingleToInt32Bits(actual) == BitConverter.SingleToInt32Bits(expected[i]) || (float.IsNaN(actual) && float.IsNaN(expected[i])), $"{values[i]:R}: {actual:R} against libtorch's {expected[i]:R}");
        }
    }

    [Fact]
    public void BFloat16Bits_EightAtOnce_AreBitForBitTheScalarConversions_AndTheRoundTrip()
    {
        var random = new Random(3);
        float[] special = [0f, -0f, 1.00390625f, 1.01171875f, 1e-40f, -1e-45f, 3.4e38f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7F800001), 65504.7f, -3.14159f];
        var values = special.Concat(Enumerable.Range(0, 1026).Select(_ => BitConverter.Int32BitsToSingle(random.Next() * (random.Next(2) == 0 ? 1 : -1)))).ToArray();
        for (var i = 0; i + 8 <= values.Length; i += 8)
        {
            var narrowed = BFloat16Bits.FromSingle(Vector256.Create(values, i));
            var widened = BFloat16Bits.ToSingle(narrowed);
            var rounded = BFloat16Bits.Round(Vector256.Create(values, i));
            for (var j = 0; j < 8; j++)
            {
                Assert.Equal(BFloat16Bits.FromSingle(values[i + j]), narrowed[j]);
                Assert.Equal(BitConverter.SingleToInt32Bits(BFloat16Bits.ToSingle(narrowed[j])), BitConverter.SingleToInt32Bits(widened[j]));
                Assert.Equal(BitConverter.SingleToInt32Bits(widened[j]), BitConverter.SingleToInt32Bits(rounded[j])); // rounding in place is the round trip
            }
        }
    }
}
