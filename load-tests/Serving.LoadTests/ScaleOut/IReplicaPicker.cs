namespace Serving.LoadTests.ScaleOut;

/// <summary>The gateway's choice of replica for a request's adapter.</summary>
internal interface IReplicaPicker
{
    string Name { get; }

    SimulatedReplica Pick(IReadOnlyList<SimulatedReplica> replicas, int adapter);
}
