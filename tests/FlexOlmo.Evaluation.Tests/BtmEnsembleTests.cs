using FlexOlmo.Evaluation.Ensembles;

namespace FlexOlmo.Evaluation.Tests;

[Collection(EvaluationCollection.Name)]
public sealed class BtmEnsembleTests(EvaluationFixture fixture)
{
    [Fact]
    public void WindowLoss_IdenticalMembers_IsTheMembersLoss()
    {
        double[] losses = [2.0, 0.5, 3.25, 1.0];

        var total = BtmEnsemble.WindowLoss([losses, losses, losses], topK: 2, temperature: 1);

        Assert.Equal(losses.Sum(), total, 12);
    }

    [Fact]
    public void WindowLoss_TwoMembers_IsThePosteriorMixtureComputedByHand()
    {
        double[] a = [1, 2];
        double[] b = [3, 0.5];

        var total = BtmEnsemble.WindowLoss([a, b], topK: 2, temperature: 1);

        // t=0: no prefix, equal weights. t=1: weights ∝ exp(-1) and exp(-3), the members' likelihoods of token 0.
        var first = -Math.Log((0.5 * Math.Exp(-1)) + (0.5 * Math.Exp(-3)));
        var second = -Math.Log(((Math.Exp(-1) * Math.Exp(-2)) + (Math.Exp(-3) * Math.Exp(-0.5))) / (Math.Exp(-1) + Math.Exp(-3)));
        Assert.Equal(first + second, total, 12);
    }

    [Fact]
    public void WindowLoss_TopOne_FollowsTheMemberWithTheBestPrefix()
    {
        double[] good = [0.1, 0.1, 5.0];
        double[] bad = [4.0, 4.0, 0.2];

        var total = BtmEnsemble.WindowLoss([bad, good], topK: 1, temperature: 1);

        // t=0 ties go to the first member (bad); after that "good" has the better prefix, even where it predicts worse.
        Assert.Equal(4.0 + 0.1 + 5.0, total, 12);
    }

    [Fact]
    public void Evaluate_TwoCopiesOfOneMember_GiveThatMembersPerplexity()
    {
        var single = fixture.Evaluate(fixture.Composed, ["only:counting"]);

        var (btm, tokens) = BtmEnsemble.Evaluate(Request(["only:counting", "only:counting"]), null, CancellationToken.None);

        foreach (var domain in single.Domains)
        {
            Assert.Equal(single["only:counting", domain], btm[domain], 2);
            Assert.Equal(single.Tokens[domain], tokens[domain]);
        }
    }

    [Fact]
    public void Evaluate_OwnersModels_FollowTheDomainsOwnExpert()
    {
        var single = fixture.Evaluate(fixture.Composed, ["only:counting", "only:chemistry"]);

        var (btm, _) = BtmEnsemble.Evaluate(Request(["only:counting", "only:chemistry"]), null, CancellationToken.None);

        // The posterior finds the counting expert on counting text within a few tokens: far better than the other expert.
        Assert.True(btm["counting"] < single["only:chemistry", "counting"], $"BTM {btm["counting"]} vs chemistry expert {single["only:chemistry", "counting"]}");
        Assert.True(btm["chemistry"] < single["only:counting", "chemistry"], $"BTM {btm["chemistry"]} vs counting expert {single["only:counting", "chemistry"]}");
    }

    [Fact]
    public void Evaluate_BadSettings_AreRefusedByName()
    {
        Assert.Contains("two members", Assert.Throws<EvaluationException>(() => BtmEnsemble.Evaluate(Request(["only:counting"]), null, CancellationToken.None)).Message, StringComparison.Ordinal);
        Assert.Contains("top-k 3", Assert.Throws<EvaluationException>(() => BtmEnsemble.Evaluate(Request(["anchor", "only:counting"]) with { TopK = 3 }, null, CancellationToken.None)).Message, StringComparison.Ordinal);
        Assert.Contains("temperature", Assert.Throws<EvaluationException>(() => BtmEnsemble.Evaluate(Request(["anchor", "only:counting"]) with { Temperature = 0 }, null, CancellationToken.None)).Message, StringComparison.Ordinal);
    }

    private BtmRequest Request(IReadOnlyList<string> members) => new()
    {
        Model = fixture.Composed,
        Members = members,
        Domains = fixture.Domains,
        SeqLen = 32,
        MaxTokens = 512,
        BatchSize = 4,
        TokenCache = fixture.TokenCache,
    };
}
