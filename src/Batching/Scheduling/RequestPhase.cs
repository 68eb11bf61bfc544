namespace Serving.Batching.Scheduling;

public enum RequestPhase
{
    /// <summary>Queued (new, or preempted and waiting to recompute).</summary>
    Waiting,

    /// <summary>Holds adapter pins and KV blocks; takes part in steps.</summary>
    Running,

    /// <summary>Left the scheduler; holds nothing.</summary>
    Ended,
}
