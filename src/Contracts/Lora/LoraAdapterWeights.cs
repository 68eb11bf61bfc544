namespace Serving.Contracts.Lora;

/// <summary>A whole adapter's weights, validated against the base model, in host memory, ready to copy into a device slot of the engine's LoRA arena.</summary>
public sealed record LoraAdapterWeights(string Name, IReadOnlyList<LoraModuleWeights> Modules)
{
    public int MaxRank => Modules.Count == 0 ? 0 : Modules.Max(m => m.Rank);

    public long ParameterCount => Modules.Sum(m => (long)m.A.Length + m.B.Length + (m.Magnitude?.Length ?? 0));

    /// <summary>A DoRA adapter: some projection carries a magnitude vector.</summary>
    public bool IsDora => Modules.Any(m => m.Magnitude is not null);
}
