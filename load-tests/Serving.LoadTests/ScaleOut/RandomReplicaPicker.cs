using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.ScaleOut;

/// <summary>Uniformly random replica (a plain Kubernetes Service / round-robin-like spread).</summary>
internal sealed class RandomReplicaPicker(LoadRandom random) : IReplicaPicker
{
    public string Name => "random";

    public SimulatedReplica Pick(IReadOnlyList<SimulatedReplica> replicas, int adapter) => replicas[random.Next(replicas.Count)];
}
