using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// What the engine does this step, decided by <see cref="StepScheduler.PlanStep"/>. Apply in order: <see cref="Ended"/>
/// (complete their streams, free their engine state), <see cref="Preempted"/> (drop their KV, keep their tokens),
/// <see cref="Started"/> (bind their slots: a request keeps them until it ends), then run <see cref="Rows"/> as one
/// forward pass, each row with its request's slots.
/// When there are no rows, wait for <see cref="Wake"/> (an adapter read, an arrival, a cancellation or a deadline).
/// </summary>
public sealed record StepPlan(
    IReadOnlyList<PlannedRow> Rows,
    IReadOnlyList<RequestStarted> Started,
    IReadOnlyList<RequestId> Preempted,
    IReadOnlyList<RequestEnded> Ended,
    Task Wake)
{
    public bool IsEmpty => Rows.Count == 0;
}
