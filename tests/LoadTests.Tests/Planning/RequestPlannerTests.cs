using Serving.LoadTests.Planning;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Tests.Planning;

public sealed class RequestPlannerTests
{
    private static readonly string[] Adapters = ["a", "b", "c", "d", "e", "f", "g", "h"];

    [Fact]
    public void Next_SameSeed_SamePlan()
    {
        var scenario = new Scenario { Requests = 100, AutoShare = 0.2, MixtureShare = 0.2, Arrival = new ArrivalSpec { Mode = "poisson", Rate = 10 } };
        var first = new RequestPlanner(scenario, "base", Adapters);
        var second = new RequestPlanner(scenario, "base", Adapters);
        for (int i = 0; i < 100; i++)
        {
            var (x, y) = (first.Next(), second.Next());
            Assert.Equal(x.Model, y.Model);
            Assert.Equal(x.PromptTokenIds, y.PromptTokenIds);
            Assert.Equal(x.ArrivalOffset, y.ArrivalOffset);
        }
    }

    [Fact]
    public void Next_Shares_FollowTheScenario()
    {
        var planner = new RequestPlanner(new Scenario { Requests = 1, AutoShare = 0.25, MixtureShare = 0.25, MixtureSize = 3 }, "base", Adapters);
        var plan = Enumerable.Range(0, 4000).Select(_ => planner.Next()).ToArray();
        Assert.InRange(plan.Count(p => p.Kind == RequestKind.Auto) / 4000.0, 0.22, 0.28);
        Assert.InRange(plan.Count(p => p.Kind == RequestKind.Mixture) / 4000.0, 0.22, 0.28);
        Assert.All(plan.Where(p => p.Kind == RequestKind.Mixture), p =>
        {
            Assert.Equal(3, p.Mixture.Select(m => m.Id).Distinct().Count());
            Assert.Equal("base", p.Model);
            Assert.Equal(1.0, p.Mixture.Sum(m => m.Weight), 6);
        });
        Assert.All(plan, p => Assert.All(p.PromptTokenIds, t => Assert.InRange(t, 100, 1000)));
    }

    [Fact]
    public void Next_Poisson_MeanGapIsOneOverRate()
    {
        var planner = new RequestPlanner(new Scenario { Requests = 1, Arrival = new ArrivalSpec { Mode = "poisson", Rate = 20 } }, "base", Adapters);
        PlannedRequest last = planner.Next();
        for (int i = 1; i < 5000; i++)
            last = planner.Next();
        Assert.InRange(last.ArrivalOffset.TotalSeconds / 5000, 0.045, 0.055);
    }

    [Fact]
    public void Next_NoAdapters_SendsTheBaseModel()
    {
        var planner = new RequestPlanner(new Scenario { Requests = 1, Adapters = new AdapterSpec { Count = 0 } }, "base", []);
        Assert.All(Enumerable.Range(0, 50).Select(_ => planner.Next()), p => Assert.Equal((RequestKind.Base, "base"), (p.Kind, p.Model)));
    }

    [Fact]
    public void Sample_Zipf_MatchesItsProbabilities()
    {
        var zipf = new ZipfDistribution(10, 1.0);
        var random = new LoadRandom(3);
        var counts = new int[10];
        for (int i = 0; i < 100_000; i++)
            counts[zipf.Sample(random)]++;
        for (int k = 0; k < 10; k++)
            Assert.InRange(counts[k] / 100_000.0, zipf.Probability(k) - 0.01, zipf.Probability(k) + 0.01);
        Assert.Equal(1 / (1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0 + 1 / 5.0 + 1 / 6.0 + 1 / 7.0 + 1 / 8.0 + 1 / 9.0 + 1 / 10.0), zipf.Probability(0), 9);
    }

    [Fact]
    public void Sample_LengthDistributions_StayInRange()
    {
        var random = new LoadRandom(5);
        var uniform = new LengthSpec { Distribution = "uniform", Min = 10, Max = 20 };
        var lognormal = new LengthSpec { Distribution = "lognormal", Value = 100, Sigma = 1, Min = 5, Max = 400 };
        var u = Enumerable.Range(0, 10_000).Select(_ => uniform.Sample(random)).ToArray();
        var l = Enumerable.Range(0, 10_000).Select(_ => lognormal.Sample(random)).Order().ToArray();
        Assert.Equal(10, u.Min());
        Assert.Equal(20, u.Max());
        Assert.InRange(l[5000], 90, 110);
        Assert.True(l.Min() >= 5 && l.Max() <= 400);
    }
}
