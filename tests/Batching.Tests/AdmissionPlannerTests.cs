using Serving.Contracts;

namespace Serving.Batching.Tests;

public sealed class AdmissionPlannerTests
{
    private static readonly AdapterMix A = AdapterMix.Single(AdapterId.Parse("a"));
    private static readonly AdapterMix B = AdapterMix.Single(AdapterId.Parse("b"));
    private static readonly AdapterMix Mix = AdapterMix.Create([(AdapterId.Parse("a"), 0.5f), (AdapterId.Parse("b"), 0.5f)]);
    private static readonly AdapterMix MixReordered = AdapterMix.Create([(AdapterId.Parse("b"), 0.5f), (AdapterId.Parse("a"), 0.5f)]);

    [Fact]
    public void Candidates_Continuous_EveryWaitingRequestInOrder() =>
        Assert.Equal([0, 1, 2, 3], AdmissionPlanner.Candidates(AdmissionPolicy.Continuous, [A], [B, AdapterMix.None, A, Mix]));

    [Fact]
    public void Candidates_PerAdapterWhileRunning_OnlyTheRunningSet() =>
        Assert.Equal([1, 3], AdmissionPlanner.Candidates(AdmissionPolicy.PerAdapter, [A, A], [B, A, AdapterMix.None, A]));

    [Fact]
    public void Candidates_PerAdapterIdle_OldestRequestsSet() =>
        Assert.Equal([0, 2], AdmissionPlanner.Candidates(AdmissionPolicy.PerAdapter, [], [B, A, B]));

    [Fact]
    public void SameSet_OrderIndependentWeightSensitive()
    {
        Assert.True(AdmissionPlanner.SameSet(Mix, MixReordered));
        Assert.False(AdmissionPlanner.SameSet(Mix, AdapterMix.Create([(AdapterId.Parse("a"), 0.4f), (AdapterId.Parse("b"), 0.6f)])));
        Assert.False(AdmissionPlanner.SameSet(A, AdapterMix.None));
        Assert.True(AdmissionPlanner.SameSet(AdapterMix.None, AdapterMix.None));
    }
}
