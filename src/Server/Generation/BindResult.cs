namespace Serving.Server.Generation;

/// <summary>
/// Outcome of giving a request's adapters device slots: <see cref="Slots"/> when it can run now; otherwise it waits,
/// for <see cref="PendingLoad"/> (its adapter is being read into host memory) or, when that is null, for a slot to be unpinned.
/// </summary>
internal readonly record struct BindResult(IReadOnlyList<(int Slot, float Weight)>? Slots, Task? PendingLoad)
{
    public static BindResult WaitForSlot => new(null, null);
}
