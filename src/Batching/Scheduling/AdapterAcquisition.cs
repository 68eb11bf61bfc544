using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// Answer of <see cref="IAdapterSlotProvider.TryAcquire"/>: exactly one of: <see cref="Slots"/> (pinned, ready),
/// <see cref="PendingLoad"/> (a read into host memory is under way: try again when it
/// completes), <see cref="Error"/> (the adapters cannot run), or none of them (every slot is pinned: wait for one).
/// </summary>
public sealed record AdapterAcquisition(
    IReadOnlyList<AdapterSlotWeight>? Slots,
    Task? PendingLoad,
    Exception? Error)
{
    public static readonly AdapterAcquisition NoFreeSlot = new(null, null, null);

    public static AdapterAcquisition Ready(IReadOnlyList<AdapterSlotWeight> slots) => new(slots, null, null);
    public static AdapterAcquisition Loading(Task pending) => new(null, pending, null);
    public static AdapterAcquisition Failed(Exception error) => new(null, null, error);
}
