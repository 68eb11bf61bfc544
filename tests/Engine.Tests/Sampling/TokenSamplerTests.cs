using Serving.Engine.Sampling;
using Serving.Contracts.Generation;

namespace Serving.Engine.Tests.Sampling;

public sealed class TokenSamplerTests
{
    private static readonly float[] Logits = [1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f];

    [Fact]
    public void Sample_TemperatureZero_IsArgMax() =>
        Assert.Equal(1, TokenSampler.Sample(Logits, new SamplingParams { Temperature = 0 }, new SeededRandom(1)).Id);

    [Theory]
    [InlineData(1e-40, 1.0, 0)]
    [InlineData(1e-40, 0.5, 0)]
    [InlineData(1e-30, 0.9, 3)]
    public void Sample_TinyTemperature_IsArgMax(double temperature, double topP, int topK) =>
        Assert.Equal(1, TokenSampler.Sample(Logits, new SamplingParams { Temperature = temperature, TopP = topP, TopK = topK }, new SeededRandom(1)).Id);

    [Fact]
    public void Sample_SameSeed_SameSequence()
    {
        var p = new SamplingParams { Temperature = 1.5 };
        var a = Enumerable.Range(0, 50).Select(_ => 0).ToList();
        var r1 = new SeededRandom(42);
        var r2 = new SeededRandom(42);
        var s1 = Enumerable.Range(0, 50).Select(_ => TokenSampler.Sample(Logits, p, r1).Id).ToArray();
        var s2 = Enumerable.Range(0, 50).Select(_ => TokenSampler.Sample(Logits, p, r2).Id).ToArray();
        var s3 = Enumerable.Range(0, 50).Select(_ => TokenSampler.Sample(Logits, p, new SeededRandom(43 + (ulong)a.Count)).Id).ToArray();
        Assert.Equal(s1, s2);
        Assert.True(s1.Distinct().Count() > 2, "temperature 1.5 should visit several tokens");
        Assert.NotEqual(s1, s3);
    }

    [Fact]
    public void Sample_TopK2_OnlyTwoBestTokens()
    {
        var r = new SeededRandom(7);
        var seen = Enumerable.Range(0, 400).Select(_ => TokenSampler.Sample(Logits, new SamplingParams { Temperature = 5, TopK = 2 }, r).Id).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5 }, seen);
    }

    [Fact]
    public void Sample_TopP_KeepsSmallestNucleus()
    {
        // Softmax of Logits: token 1 ≈ 0.36, 5 ≈ 0.33, 2 ≈ 0.22 → p = 0.6 needs tokens {1, 5}.
        var r = new SeededRandom(9);
        var seen = Enumerable.Range(0, 400).Select(_ => TokenSampler.Sample(Logits, new SamplingParams { TopP = 0.6 }, r).Id).ToHashSet();
        Assert.Equal(new HashSet<int> { 1, 5 }, seen);
    }

    [Fact]
    public void Sample_Unfiltered_FollowsDistribution()
    {
        var r = new SeededRandom(11);
        var counts = new int[Logits.Length];
        for (int i = 0; i < 20000; i++)
            counts[TokenSampler.Sample(Logits, new SamplingParams(), r).Id]++;
        double z = Logits.Sum(l => Math.Exp(l));
        for (int i = 0; i < Logits.Length; i++)
            Assert.InRange(counts[i] / 20000.0, Math.Exp(Logits[i]) / z - 0.02, Math.Exp(Logits[i]) / z + 0.02);
    }

    /// <summary>A vocabulary of whole 16-id chunks and a tail: the chunked walk and the vector exponentials keep the distribution.</summary>
    [Fact]
    public void Sample_UnfilteredLargeVocabulary_FollowsDistribution()
    {
        var random = new Random(5);
        var logits = Enumerable.Range(0, 1000).Select(i => (float)(random.NextDouble() * 4 - (i % 97 == 0 ? -3 : 2))).ToArray();
        logits[^1] = 5;                                 // an id past the last whole chunk, drawn often
        var p = new SamplingParams { Temperature = 0.9 };
        double z = logits.Sum(l => Math.Exp(l / 0.9));
        var r = new SeededRandom(3);
        var counts = new int[logits.Length];
        const int draws = 40000;
        for (int i = 0; i < draws; i++)
            counts[TokenSampler.Sample(logits, p, r).Id]++;
        for (int i = 0; i < logits.Length; i++)
            Assert.InRange(counts[i] / (double)draws, Math.Exp(logits[i] / 0.9) / z - 0.006, Math.Exp(logits[i] / 0.9) / z + 0.006);
    }

    [Fact]
    public void Sample_LogprobsLargeVocabulary_MatchExactLogSoftmax()
    {
        var random = new Random(8);
        var logits = Enumerable.Range(0, 1003).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
        var s = TokenSampler.Sample(logits, new SamplingParams { Temperature = 0, Logprobs = 2 }, new SeededRandom(1));
        double max = logits.Max();
        double logZ = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
        Assert.Equal(logits[s.Id] - logZ, s.Logprob, 4);
        Assert.Equal(logits[s.TopLogprobs[1].Id] - logZ, s.TopLogprobs[1].Logprob, 4);
    }

    [Fact]
    public void Sample_Logprobs_AreRawLogSoftmaxWithTopAlternatives()
    {
        var s = TokenSampler.Sample(Logits, new SamplingParams { Temperature = 0, Logprobs = 3 }, new SeededRandom(1));
        double logZ = Math.Log(Logits.Sum(l => Math.Exp(l)));
        Assert.Equal(3.0 - logZ, s.Logprob, 5);
        Assert.Equal(new[] { 1, 5, 2 }, s.TopLogprobs.Select(t => t.Id));
        Assert.Equal(2.5 - logZ, s.TopLogprobs[2].Logprob, 5);
    }

    /// <summary>
    /// Top-k and top-p over a vocabulary of 1,000 with the sampler's threshold search, against the textbook definition
    /// (sort, keep the k best, then the smallest prefix holding p of their mass, renormalise): only nucleus ids are drawn,
    /// at their renormalised frequencies.
    /// </summary>
    [Theory]
    [InlineData(0, 0.9, 0.7)]
    [InlineData(0, 0.5, 1.3)]
    [InlineData(40, 1.0, 1.0)]
    [InlineData(40, 0.8, 2.0)]
    [InlineData(1, 0.8, 1.0)]
    public void Sample_TopKTopPLargeVocabulary_FollowsTheSortedNucleus(int topK, double topP, double temperature)
    {
        var random = new Random(topK + (int)(topP * 100));
        var logits = Enumerable.Range(0, 1000).Select(i => (float)(random.NextDouble() * 6 - (i % 37 == 0 ? 0 : 3))).ToArray();
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        var weight = order.Select(i => Math.Exp((logits[i] - logits[order[0]]) / temperature)).ToArray();
        int keep = topK > 0 ? topK : order.Length;
        double kMass = weight.Take(keep).Sum(), cumulative = 0;
        int nucleus = 0;
        while (nucleus < keep && cumulative < topP * kMass * (1 - 1e-9))
            cumulative += weight[nucleus++];
        var expected = Enumerable.Range(0, nucleus).ToDictionary(j => order[j], j => weight[j] / cumulative);

        var p = new SamplingParams { Temperature = temperature, TopK = topK, TopP = topP };
        var r = new SeededRandom(17);
        var counts = new Dictionary<int, int>();
        const int draws = 40000;
        for (int i = 0; i < draws; i++)
        {
            int id = TokenSampler.Sample(logits, p, r).Id;
            counts[id] = counts.GetValueOrDefault(id) + 1;
        }

        Assert.All(counts.Keys, id => Assert.True(expected.ContainsKey(id), $"id {id} is outside the nucleus of {nucleus}"));
        foreach (var (id, probability) in expected)
            Assert.InRange(counts.GetValueOrDefault(id) / (double)draws, probability - 0.01, probability + 0.01);
    }

    [Fact]
    public void Sample_MaskedIdsWithTopP_NeverDrawnEvenTheBest()
    {
        ulong[] mask = [ulong.MaxValue & ~(1UL << 1) & ~(1UL << 5)];
        var r = new SeededRandom(4);
        var seen = Enumerable.Range(0, 400).Select(_ => TokenSampler.Sample(Logits, new SamplingParams { TopP = 0.6 }, r, (mask, [])).Id).ToHashSet();
        // Without 1 and 5: token 2 (e^2.5) holds ≈ 0.69 of the rest, so p = 0.6 keeps it alone.
        Assert.Equal(new HashSet<int> { 2 }, seen);
    }

    [Fact]
    public void Sample_MaskedGreedy_TakesTheBestAllowedAndRawLogprob()
    {
        ulong[] mask = [1UL << 0 | 1UL << 3];
        var token = TokenSampler.Sample(Logits, new SamplingParams { Temperature = 0, Logprobs = 1 }, new SeededRandom(1), (mask, [2]));
        int expected = new[] { 0, 2, 3 }.MaxBy(i => Logits[i]);
        Assert.Equal(expected, token.Id);
        double logZ = Math.Log(Logits.Sum(v => Math.Exp(v)));
        Assert.Equal(Logits[expected] - logZ, token.Logprob, 4);
        Assert.Equal(Array.IndexOf(Logits, Logits.Max()), token.TopLogprobs[0].Item1);   // alternatives from the raw distribution
    }

    [Fact]
    public void Sample_FlatDistributionTopP_KeepsMostOfTheVocabulary()
    {
        // A random model's near-uniform 32k distribution: the nucleus of 0.95 spans ~95 % of the ids.
        var random = new Random(3);
        var logits = Enumerable.Range(0, 32000).Select(_ => (float)(random.NextDouble() * 0.01)).ToArray();
        var r = new SeededRandom(8);
        var seen = Enumerable.Range(0, 20000).Select(_ => TokenSampler.Sample(logits, new SamplingParams { Temperature = 0.8, TopP = 0.95 }, r).Id).ToHashSet();
        Assert.InRange(seen.Count, 14000, 16000);   // 20,000 draws over ~30,400 ids: about 14,600 distinct expected
        var excluded = Enumerable.Range(0, logits.Length).OrderBy(i => logits[i]).Take(1000).ToHashSet();
        Assert.DoesNotContain(seen, excluded.Contains);
    }

    [Theory]
    [InlineData(-0.1, 1.0, 0)]
    [InlineData(1.0, 0.0, 0)]
    [InlineData(1.0, 1.5, 0)]
    [InlineData(1.0, 1.0, -2)]
    public void Validate_OutOfRange_Throws(double temperature, double topP, int topK) =>
        Assert.Throws<ArgumentException>(() => new SamplingParams { Temperature = temperature, TopP = topP, TopK = topK }.Validate());
}
