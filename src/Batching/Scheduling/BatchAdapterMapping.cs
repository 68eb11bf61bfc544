namespace Serving.Batching.Scheduling;

/// <summary>
/// The batch→slot mapping of one step, built once and shared by every layer: row i (the i-th <see cref="PlannedRow"/>, all of
/// its tokens) adds Σ wⱼ · scaleⱼ · Bⱼ·(Aⱼ·x) over <c>RowSlots[i]</c>; an empty list is the base model. Immutable.
/// </summary>
internal sealed class BatchAdapterMapping
{
    public static readonly BatchAdapterMapping Empty = new([]);

    public BatchAdapterMapping(IReadOnlyList<IReadOnlyList<AdapterSlotWeight>> rowSlots)
    {
        RowSlots = rowSlots.ToArray();
        DistinctSlots = rowSlots.SelectMany(r => r).Select(s => s.Slot).Distinct().Count();
    }

    public IReadOnlyList<IReadOnlyList<AdapterSlotWeight>> RowSlots { get; }

    /// <summary>Adapters (device slots) the step reads.</summary>
    public int DistinctSlots { get; }

    public bool UsesAdapters => DistinctSlots > 0;
}
