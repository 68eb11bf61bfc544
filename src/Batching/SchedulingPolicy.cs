namespace Serving.Batching;

/// <summary>In which order waiting requests are admitted and which running request gives way when memory or rows run out (vLLM's <c>--scheduling-policy</c>).</summary>
public enum SchedulingPolicy
{
    /// <summary>First come, first served: admission by arrival; the youngest running request is preempted first.</summary>
    Fcfs,

    /// <summary>
    /// By each request's <c>priority</c> (lower is more urgent, 0 by default), then arrival: the least urgent running
    /// request is preempted first, and a waiting request preempts running ones strictly less urgent than itself when it
    /// cannot otherwise get a row or KV memory.
    /// </summary>
    Priority,
}
