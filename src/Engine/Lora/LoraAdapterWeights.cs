namespace Serving.Engine.Lora;

/// <summary>A whole adapter's weights, validated against the base model, ready to copy into a <see cref="LoraSlotArena"/> slot.</summary>
internal sealed record LoraAdapterWeights(string Name, IReadOnlyList<LoraModuleWeights> Modules)
{
    public int MaxRank => Modules.Count == 0 ? 0 : Modules.Max(m => m.Rank);

    public long ParameterCount => Modules.Sum(m => (long)m.A.Length + m.B.Length);
}
