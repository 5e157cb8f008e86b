using System.Text.Json.Nodes;
using FlexOlmo.Core.Configuration;
using FlexOlmo.Core.Kernels;
using FlexOlmo.Core.Modeling;
using static TorchSharp.torch;

namespace FlexOlmo.Core.Tests.Kernels;

// Only this class turns the profile on, and xunit runs its tests one at a time; other classes' passes may still be
// recorded while it is on, so the enabled test asserts lower bounds.
public sealed class PassProfileTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void Snapshot_RecordsNothing_WhileDisabled()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        PassProfile.Enabled = false;
        PassProfile.Reset();

        CpuGemv.Linear(randn([1, 1024]), randn([1024, 1024]));

        Assert.All(PassProfile.Snapshot(), c => Assert.Equal(0, c.Passes));
    }

    [Fact]
    public void Snapshot_HoldsEachParallelPass_InTheClassOfItsWeightBytes()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        manual_seed(31);
        var weight = randn([1024, 1024]); // 4 MiB of fp32: the 4-16 MiB class
        var block = Block();
        var routes = ExpertRoutes.Of(tensor(new long[] { 0, 1 }).view(1, 2), tensor(new[] { 0.5f, 0.5f }).view(1, 2), 4);
        PassProfile.Reset();
        PassProfile.Enabled = true;
        try
        {
            CpuGemv.Linear(randn([1, 1024]), weight);
            CpuExperts.Forward(randn([1, 256]), block.Experts, routes); // gate and up of two experts (4 MiB), then their down (2 MiB)
        }
        finally
        {
            PassProfile.Enabled = false;
        }

        var classes = PassProfile.Snapshot();
        Assert.Equal(PassProfile.UpperBytes.Count, classes.Count);
        Assert.Equal(16 * MiB, classes[2].UpperBytes);
        Assert.True(classes[2].Passes >= 2 && classes[2].Bytes >= 8 * MiB, $"4-16 MiB: {classes[2]}");
        Assert.True(classes[1].Passes >= 1 && classes[1].Bytes >= 2 * MiB, $"1-4 MiB: {classes[1]}");
        Assert.True(classes[2].Time > TimeSpan.Zero && classes[2].BytesPerSecond > 0);
    }

    [Fact]
    public void Plus_AddsPassesBytesAndTime_UnderTheLargerBound()
    {
        var small = new PassTotals(4 * MiB, 3, 6 * MiB, TimeSpan.FromMilliseconds(2));
        var large = new PassTotals(16 * MiB, 1, 8 * MiB, TimeSpan.FromMilliseconds(1));

        var both = default(PassTotals).Plus(small).Plus(large);

        Assert.Equal(new PassTotals(16 * MiB, 4, 14 * MiB, TimeSpan.FromMilliseconds(3)), both);
        Assert.Equal(14 * MiB / 0.003, both.BytesPerSecond, 6);
        Assert.Equal(0, default(PassTotals).BytesPerSecond);
    }

    /// <summary>Four experts of hidden 256 and intermediate 1024 in fp32: each weight 1 MiB, enough to run over the cores.</summary>
    private static FlexOlmoSparseMoeBlock Block()
    {
        var config = ModelConfig.FromJson(JsonNode.Parse("""
            {"model_type":"flex_olmo","vocab_size":64,"hidden_size":256,"intermediate_size":1024,"num_hidden_layers":1,
             "num_attention_heads":4,"num_local_experts":4,"num_experts_per_tok":2}
            """)!.AsObject(), "test.json");
        var block = new FlexOlmoSparseMoeBlock(config, CPU, ScalarType.Float32);
        using var noGrad = no_grad();
        foreach (var (_, parameter) in block.named_parameters())
        {
            parameter.normal_(0, 0.1);
        }

        return block;
    }
}
