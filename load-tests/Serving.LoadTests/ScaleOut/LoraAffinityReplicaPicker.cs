using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.ScaleOut;

/// <summary>
/// The Gateway API Inference Extension's LoRA-affinity scoring, read from each replica's
/// <c>vllm:lora_requests_info</c>: 1.0 where the adapter is running, 0.6 where it is waiting, 0.8 where the replica
/// has room for another adapter (running + waiting &lt; max LoRAs), else 0; plus the queue scorer (1 for the
/// shortest queue, 0 for the longest) times <c>queueWeight</c> (1 = the two scorers weighted equally); ties broken at random.
/// </summary>
internal sealed class LoraAffinityReplicaPicker(LoadRandom random, double queueWeight) : IReplicaPicker
{
    public string Name => "lora-affinity";

    public static double AffinityScore(SimulatedReplica replica, int adapter)
    {
        var running = replica.RunningAdapters;
        var waiting = replica.WaitingAdapters;
        if (running.Contains(adapter))
            return 1.0;
        if (waiting.Contains(adapter))
            return 0.6;
        return running.Union(waiting).Count() < replica.MaxAdapters ? 0.8 : 0.0;
    }

    public SimulatedReplica Pick(IReadOnlyList<SimulatedReplica> replicas, int adapter)
    {
        int minQueue = replicas.Min(r => r.QueueLength), maxQueue = replicas.Max(r => r.QueueLength);
        double best = double.NegativeInfinity;
        var winners = new List<SimulatedReplica>();
        foreach (var replica in replicas)
        {
            double queue = maxQueue == minQueue ? 1.0 : (double)(maxQueue - replica.QueueLength) / (maxQueue - minQueue);
            double score = AffinityScore(replica, adapter) + queueWeight * queue;
            if (score > best + 1e-12)
            {
                best = score;
                winners.Clear();
            }

            if (Math.Abs(score - best) <= 1e-12)
                winners.Add(replica);
        }

        return winners[random.Next(winners.Count)];
    }
}
