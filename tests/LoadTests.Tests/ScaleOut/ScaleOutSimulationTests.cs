using Serving.LoadTests.ScaleOut;
using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Tests.ScaleOut;

public sealed class ScaleOutSimulationTests
{
    private static readonly ScaleOutOptions Fleet = new() { Replicas = 4, SlotsPerReplica = 4, Adapters = 64, Requests = 4000, RatePerSecond = 10, Seed = 3 };

    [Fact]
    public void Run_LoraAffinity_LoadsFewerAdaptersThanRandom()
    {
        var random = ScaleOutSimulation.Run(Fleet, r => new RandomReplicaPicker(r));
        var affinity = ScaleOutSimulation.Run(Fleet, r => new LoraAffinityReplicaPicker(r, 1.0));

        Assert.Equal(4000, random.Requests);
        Assert.Equal(4000, affinity.Requests);
        Assert.True(affinity.AdapterLoads < random.AdapterLoads * 0.95, $"affinity {affinity.AdapterLoads} vs random {random.AdapterLoads}");
        Assert.True(affinity.TtftMs.P99 < random.TtftMs.P99, $"TTFT p99 affinity {affinity.TtftMs.P99:F0} vs random {random.TtftMs.P99:F0}");
    }

    [Fact]
    public void Run_SameSeed_SameResult()
    {
        var first = ScaleOutSimulation.Run(Fleet, r => new LoraAffinityReplicaPicker(r, 1.0));
        var second = ScaleOutSimulation.Run(Fleet, r => new LoraAffinityReplicaPicker(r, 1.0));
        Assert.Equal(first.AdapterLoads, second.AdapterLoads);
        Assert.Equal(first.EndToEndMs, second.EndToEndMs);
    }

    [Fact]
    public void Run_OneAdapter_LoadsItOncePerReplicaAtMost()
    {
        var result = ScaleOutSimulation.Run(Fleet with { Adapters = 1 }, r => new RandomReplicaPicker(r));
        Assert.InRange(result.AdapterLoads, 1, 4);
    }

    [Fact]
    public void AffinityScore_FollowsTheGatewaysScale()
    {
        var replica = new SimulatedReplica(0, Fleet with { SlotsPerReplica = 2, MaxBatch = 2 });
        replica.Enqueue(new SimulatedRequest(adapter: 1, arrivalMs: 0, outputTokens: 10), 0);   // admitted: adapter 1 running
        replica.Enqueue(new SimulatedRequest(adapter: 2, arrivalMs: 0, outputTokens: 10), 0);   // admitted: adapter 2 running, batch full
        replica.Enqueue(new SimulatedRequest(adapter: 3, arrivalMs: 0, outputTokens: 10), 0);   // waits
        Assert.Equal(1.0, LoraAffinityReplicaPicker.AffinityScore(replica, 1));
        Assert.Equal(0.6, LoraAffinityReplicaPicker.AffinityScore(replica, 3));
        Assert.Equal(0.0, LoraAffinityReplicaPicker.AffinityScore(replica, 4));
        var empty = new SimulatedReplica(1, Fleet);
        Assert.Equal(0.8, LoraAffinityReplicaPicker.AffinityScore(empty, 4));
    }

    [Fact]
    public void Validate_SlotsAboveBatch_Refused() =>
        Assert.NotEmpty((Fleet with { SlotsPerReplica = 64, MaxBatch = 8 }).Validate());

    [Fact]
    public void Pick_Random_SpreadsEvenly()
    {
        var replicas = Enumerable.Range(0, 4).Select(i => new SimulatedReplica(i, Fleet)).ToArray();
        var picker = new RandomReplicaPicker(new LoadRandom(1));
        var counts = new int[4];
        for (int i = 0; i < 4000; i++)
            counts[picker.Pick(replicas, 0).Index]++;
        Assert.All(counts, c => Assert.InRange(c, 900, 1100));
    }
}
