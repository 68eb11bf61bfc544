namespace Serving.Batching;

/// <summary>One (device slot, mixing weight) pair of a row: the row's output gains <c>Weight · scale · B·(A·x)</c> of the slot's adapter.</summary>
internal readonly record struct AdapterSlotWeight(int Slot, float Weight);
