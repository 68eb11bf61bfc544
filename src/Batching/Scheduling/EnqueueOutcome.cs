namespace Serving.Batching.Scheduling;

public enum EnqueueOutcome
{
    Accepted,

    /// <summary>The queue holds <see cref="BatchingOptions.MaxQueuedRequests"/> requests.</summary>
    TooManyRequests,

    /// <summary>Queued prompts would exceed <see cref="BatchingOptions.MaxQueuedTokens"/>.</summary>
    TooManyTokens,

    /// <summary>The scheduler is shutting down.</summary>
    Closed,
}
