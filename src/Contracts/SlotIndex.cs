namespace Serving.Contracts;

/// <summary>
/// A row of the engine's device-resident adapter arenas. <see cref="BaseModel"/> is the one sentinel for "no adapter":
/// rows that carry it get only the base model's projections.
/// </summary>
public readonly record struct SlotIndex(int Value)
{
    public static readonly SlotIndex BaseModel = new(-1);

    public bool IsBaseModel => Value < 0;

    public override string ToString() => IsBaseModel ? "base" : Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
