using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>A request the scheduler removed while planning a step; <see cref="Error"/> is set for <see cref="EndCause.Failed"/>.</summary>
public sealed record RequestEnded(RequestId Id, EndCause Cause, Exception? Error);
