using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using Serving.Engine.Routing;
using Serving.Engine.Sampling;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Routing;

public sealed class ArrowRoutingTests
{
    private static float[] Random(SeededRandom random, int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();

    [Theory]
    [InlineData(1, 16, 24)]
    [InlineData(8, 64, 48)]
    [InlineData(16, 96, 130)]
    [InlineData(64, 300, 200)]
    public void TopRightSingularVector_PowerIteration_MatchesTheSvdOfBTimesA(int rank, int inF, int outF)
    {
        var random = new SeededRandom((ulong)(rank * 100 + inF));
        var a = Random(random, rank * inF);
        var b = Random(random, outF * rank);

        var v = ArrowPrototypes.TopRightSingularVector(a, b, rank);

        using var delta = tensor(b, [outF, rank]).mm(tensor(a, [rank, inF]));      // ΔW [out, in], only in the test
        var (_, _, vh) = linalg.svd(delta.to(ScalarType.Float64), fullMatrices: false);
        using var top = vh[0].to(ScalarType.Float32);
        float cosine = Math.Abs(top.dot(tensor(v)).item<float>());
        Assert.True(cosine > 0.999f, $"|cos| = {cosine}");
        Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 4);
    }

    [Fact]
    public void TopRightSingularVector_DependentRowsOfA_StillTheSvdDirection()
    {
        var random = new SeededRandom(5);
        var row = Random(random, 40);
        var a = row.Concat(row).Concat(Random(random, 40)).ToArray();          // rows 0 and 1 equal: A has rank 2
        var b = Random(random, 30 * 3);

        var v = ArrowPrototypes.TopRightSingularVector(a, b, 3);

        using var delta = tensor(b, [30, 3]).mm(tensor(a, [3, 40]));
        var (_, _, vh) = linalg.svd(delta.to(ScalarType.Float64), fullMatrices: false);
        using var top = vh[0].to(ScalarType.Float32);
        Assert.True(Math.Abs(top.dot(tensor(v)).item<float>()) > 0.999f);
    }

    [Fact]
    public void TopRightSingularVector_ZeroB_ZeroVectorNotNaN()
    {
        var v = ArrowPrototypes.TopRightSingularVector(new float[4 * 8].Select((_, i) => (float)i).ToArray(), new float[6 * 4], 4);

        Assert.All(v, x => Assert.Equal(0f, x));
    }

    private static ArrowPrototypes Adapter(string name, int hot, int inF) =>
        new(name, new Dictionary<(int, LoraTarget), float[]>
        {
            [(0, LoraTarget.Q)] = Enumerable.Range(0, inF).Select(k => k == hot ? 1f : 0f).ToArray(),
            [(1, LoraTarget.Q)] = Enumerable.Range(0, inF).Select(k => k == hot ? -1f : 0f).ToArray(),
        });

    [Fact]
    public void Route_HiddenStatesAlongOneAdaptersPrototype_ThatAdapterFirstWithTheLargestWeight()
    {
        const int inF = 8, tokens = 3;
        var candidates = new[] { Adapter("zero", 0, inF), Adapter("three", 3, inF), Adapter("five", 5, inF) };
        var h = new float[tokens * inF];
        for (int t = 0; t < tokens; t++)
        {
            h[t * inF + 3] = 2f;      // strongly along "three"
            h[t * inF + 5] = 0.5f;    // a little along "five"
        }

        var inputs = new Dictionary<(int, LoraTarget), float[]> { [(0, LoraTarget.Q)] = h, [(1, LoraTarget.Q)] = h };
        var (chosen, scores) = ArrowRouter.Route(candidates, inputs, tokens, topK: 2, temperature: 0.5);

        Assert.Equal([1, 2], chosen.Select(c => c.Candidate));
        Assert.True(chosen[0].Weight > chosen[1].Weight);
        Assert.Equal(1f, chosen.Sum(c => c.Weight), 5);
        Assert.Equal([0.0, 2.0, 0.5], scores.Select(s => Math.Round(s, 6)));
    }

    [Fact]
    public void Route_BadArguments_Throw()
    {
        var inputs = new Dictionary<(int, LoraTarget), float[]>();
        Assert.Throws<ArgumentException>(() => ArrowRouter.Route([], inputs, 1, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArrowRouter.Route([Adapter("a", 0, 2)], inputs, 1, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArrowRouter.Route([Adapter("a", 0, 2)], inputs, 1, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ArrowRouter.Route([Adapter("a", 0, 2)], inputs, 1, 1, double.NaN));
    }
}
