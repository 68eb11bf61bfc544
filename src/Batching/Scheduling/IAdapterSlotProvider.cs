using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// Device slots for the scheduler, implemented over the adapter store's tiers. Called only from the engine loop, between
/// steps. Never blocks: a missing adapter starts loading and the answer says to wait.
/// </summary>
public interface IAdapterSlotProvider
{
    /// <summary>
    /// Pins a slot for every adapter of <paramref name="mix"/>, request <paramref name="request"/>'s adapters (all or
    /// nothing), in the adapter versions the request was resolved to when it arrived: a hot swap never changes a request
    /// mid-way, even when it is preempted and resumes.
    /// </summary>
    AdapterAcquisition TryAcquire(RequestId request, AdapterMix mix);

    /// <summary>
    /// Starts reading <paramref name="mix"/>'s adapters into host memory without taking slots, for a request still deep in the
    /// queue, so its adapters are warm by the time it is admitted. Never blocks, never throws (a failed read surfaces at
    /// admission).
    /// </summary>
    void Prefetch(RequestId request, AdapterMix mix);

    /// <summary>Unpins slots acquired by <see cref="TryAcquire"/>.</summary>
    void Release(IReadOnlyList<AdapterSlotWeight> slots);
}
