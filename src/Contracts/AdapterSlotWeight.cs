namespace Serving.Contracts;

/// <summary>One (device slot, mixing weight) pair of a row: the row's output gains <c>Weight · scale · B·(A·x)</c> of the slot's adapter.</summary>
public readonly record struct AdapterSlotWeight(int Slot, float Weight)
{
    /// <summary>A pair written as a tuple, as tests and benchmarks list a row's slots: <c>[(0, 1f), (2, 0.5f)]</c>.</summary>
    public static implicit operator AdapterSlotWeight((int Slot, float Weight) pair) => new(pair.Slot, pair.Weight);
}
