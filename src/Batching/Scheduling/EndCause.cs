namespace Serving.Batching.Scheduling;

/// <summary>Why a request left the scheduler.</summary>
public enum EndCause
{
    /// <summary>The engine finished it (stop or length).</summary>
    Completed,

    /// <summary>The caller cancelled it (client disconnect).</summary>
    Cancelled,

    /// <summary>Its deadline passed.</summary>
    TimedOut,

    /// <summary>It cannot run: its adapter failed to load, it needs more KV memory than the cache has, or its step failed.</summary>
    Failed,
}
