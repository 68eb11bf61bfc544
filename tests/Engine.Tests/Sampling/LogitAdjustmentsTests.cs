using Serving.Contracts.Generation;
using Serving.Engine.Sampling;

namespace Serving.Engine.Tests.Sampling;

/// <summary>Each adjustment against its formula written out per token, and through <see cref="TokenSampler"/>.</summary>
public sealed class LogitAdjustmentsTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f, -0.25f, 0f];

    private static TokenHistory History(int[] prompt, int[] generated, bool indexPrompt)
    {
        var history = new TokenHistory(prompt, indexPrompt);
        foreach (int t in generated)
            history.Add(t);
        return history;
    }

    [Fact]
    public void Apply_EveryAdjustment_MatchesTheFormulaTokenByToken()
    {
        int[] prompt = [0, 3, 3, 7];
        int[] generated = [1, 5, 1, 3, 1];
        var p = new SamplingParams
        {
            LogitBias = new Dictionary<int, float> { [2] = -4f, [6] = 1.5f },
            PresencePenalty = 0.5f, FrequencyPenalty = 0.25f, RepetitionPenalty = 1.3f, MinTokens = 10,
        };
        var adjusted = LogitAdjustments.Apply(Logits, p, History(prompt, generated, indexPrompt: true), [4]).ToArray();
        for (int t = 0; t < Logits.Length; t++)
        {
            float expected = Logits[t];
            if (t == 4)
                expected = float.NegativeInfinity;
            expected += t switch { 2 => -4f, 6 => 1.5f, _ => 0f };
            if (prompt.Contains(t) || generated.Contains(t))
                expected = expected > 0 ? expected / 1.3f : expected * 1.3f;
            int count = generated.Count(g => g == t);
            expected -= 0.25f * count + (count > 0 ? 0.5f : 0f);
            Assert.Equal(expected, adjusted[t]);
        }
    }

    [Fact]
    public void Apply_RepetitionPenaltyOnATokenInPromptAndOutput_AppliedOnce()
    {
        var p = new SamplingParams { RepetitionPenalty = 2f };
        var adjusted = LogitAdjustments.Apply(Logits, p, History([1], [1, 1], indexPrompt: true), []);
        Assert.Equal(Logits[1] / 2f, adjusted[1]);
        Assert.Equal(Logits[2], adjusted[2]);
    }

    [Fact]
    public void Apply_AllowedTokenIds_EveryOtherTokenMinusInfinityTheAllowedBiased()
    {
        var p = new SamplingParams { AllowedTokenIds = [2, 5, 99], LogitBias = new Dictionary<int, float> { [5] = 1f, [6] = 50f } };
        Assert.True(p.AdjustsLogits);
        var adjusted = LogitAdjustments.Apply(Logits, p, null, []).ToArray();
        for (int t = 0; t < Logits.Length; t++)
            Assert.Equal(t switch { 2 => Logits[2], 5 => Logits[5] + 1f, _ => float.NegativeInfinity }, adjusted[t]);
    }

    [Fact]
    public void Apply_Always_LeavesTheRawLogitsAlone()
    {
        var raw = (float[])Logits.Clone();
        LogitAdjustments.Apply(raw, new SamplingParams { LogitBias = new Dictionary<int, float> { [1] = -100f } }, null, [0]);
        Assert.Equal(Logits, raw);
    }

    [Fact]
    public void Sample_BiasBansTheArgMax_GreedyTakesTheNextAndLogprobStaysRaw()
    {
        var p = new SamplingParams { Temperature = 0, Logprobs = 1, LogitBias = new Dictionary<int, float> { [1] = -100f } };
        var token = TokenSampler.Sample(Logits, p, new SeededRandom(1));
        Assert.Equal(5, token.Id);
        Assert.Equal(1, token.TopLogprobs[0].Id);                            // alternatives come from the raw distribution
        double logZ = Math.Log(Logits.Sum(l => Math.Exp(l)));
        Assert.Equal(Logits[5] - logZ, token.Logprob, 5);
    }

    [Fact]
    public void Sample_PositiveBias_TakesTheToken()
    {
        var p = new SamplingParams { Temperature = 1, LogitBias = new Dictionary<int, float> { [3] = 100f } };
        var random = new SeededRandom(3);
        Assert.All(Enumerable.Range(0, 50), _ => Assert.Equal(3, TokenSampler.Sample(Logits, p, random).Id));
    }

    [Fact]
    public void Sample_FrequencyPenalty_GreedyMovesOffTheRepeatedToken()
    {
        var p = new SamplingParams { Temperature = 0, FrequencyPenalty = 2f };
        Assert.Equal(1, TokenSampler.Sample(Logits, p, new SeededRandom(1), history: History([], [], false)).Id);
        Assert.Equal(5, TokenSampler.Sample(Logits, p, new SeededRandom(1), history: History([], [1], false)).Id);
    }

    [Fact]
    public void Sample_SuppressedTokens_NeverChosen()
    {
        var p = new SamplingParams { Temperature = 3, MinTokens = 4 };
        var random = new SeededRandom(5);
        var seen = Enumerable.Range(0, 600).Select(_ => TokenSampler.Sample(Logits, p, random, suppressed: [1, 5]).Id).ToHashSet();
        Assert.DoesNotContain(1, seen);
        Assert.DoesNotContain(5, seen);
        Assert.True(seen.Count >= 4, "temperature 3 visits the rest");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(1.0)]
    public void Sample_RulesLeavingNoToken_ConstraintGivesWayThenSuppression(double temperature)
    {
        // Only token 4 allowed, and a constraint mask that holds only token 2: the constraint gives way.
        var p = new SamplingParams { Temperature = temperature, AllowedTokenIds = [4, 6] };
        ulong[] onlyTwo = [1UL << 2];
        Assert.All(Enumerable.Range(0, 20), i =>
            Assert.Contains(TokenSampler.Sample(Logits, p, new SeededRandom((ulong)i), allowed: (onlyTwo, [])).Id, new[] { 4, 6 }));
        // Only stop tokens allowed while min_tokens suppresses them: the suppression gives way, the allowed set does not.
        var stopsOnly = p with { MinTokens = 3 };
        Assert.All(Enumerable.Range(0, 20), i =>
            Assert.Contains(TokenSampler.Sample(Logits, stopsOnly, new SeededRandom((ulong)i), suppressed: [4, 6]).Id, new[] { 4, 6 }));
    }

    [Fact]
    public void Sample_MinP_KeepsTokensAtLeastThatShareOfTheMostLikely()
    {
        // At temperature 1, p[t] / p[1] = exp(l[t] − 3): tokens 5 (0.905), 2 (0.607) pass 0.5; 0 (0.135) and the rest do not.
        var p = new SamplingParams { Temperature = 1, MinP = 0.5 };
        var random = new SeededRandom(11);
        var seen = Enumerable.Range(0, 600).Select(_ => TokenSampler.Sample(Logits, p, random).Id).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 2, 5 }, seen);
    }

    [Fact]
    public void Sample_MinPWithTemperature_ShareTakenAfterTemperature()
    {
        // At temperature 0.25 the ratios are exp(4 (l[t] − 3)): token 5 0.670, token 2 0.135: min_p 0.5 keeps {1, 5}.
        var p = new SamplingParams { Temperature = 0.25, MinP = 0.5 };
        var random = new SeededRandom(12);
        var seen = Enumerable.Range(0, 600).Select(_ => TokenSampler.Sample(Logits, p, random).Id).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5 }, seen);
    }

    [Theory]
    [InlineData(-2.5f, 0f, 1f, 0.0)]
    [InlineData(0f, 2.1f, 1f, 0.0)]
    [InlineData(0f, 0f, 0f, 0.0)]
    [InlineData(0f, 0f, 1f, 1.5)]
    public void Validate_OutOfRange_Throws(float presence, float frequency, float repetition, double minP) =>
        Assert.Throws<ArgumentException>(() => new SamplingParams
        {
            PresencePenalty = presence, FrequencyPenalty = frequency, RepetitionPenalty = repetition, MinP = minP,
        }.Validate());

    [Fact]
    public void Validate_BiasOutOfRangeOrTooMany_Throws()
    {
        Assert.Throws<ArgumentException>(() => new SamplingParams { LogitBias = new Dictionary<int, float> { [1] = 101f } }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingParams { LogitBias = new Dictionary<int, float> { [-1] = 1f } }.Validate());
        var many = Enumerable.Range(0, SamplingParams.MaxLogitBiasEntries + 1).ToDictionary(i => i, _ => 1f);
        Assert.Throws<ArgumentException>(() => new SamplingParams { LogitBias = many }.Validate());
    }
}
