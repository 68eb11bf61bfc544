using Serving.Contracts.Lora;

namespace Serving.AdapterStore.Registry;

/// <summary>
/// What a LoRA adapter changes, as text: its ranks, target modules (an expert's as <c>experts.gate_proj</c>, …) and how many layers. Two versions of one name with the
/// same shape are interchangeable in slots and routing; a different shape is a different adapter.
/// </summary>
public static class AdapterShape
{
    public static string Of(LoraAdapterWeights weights)
    {
        var ranks = weights.Modules.Select(m => m.Rank).Distinct().Order();
        var targets = weights.Modules.Select(m => (m.Expert is null ? "" : "experts.") + LoraTargets.ModuleName(m.Target)).Distinct().Order(StringComparer.Ordinal);
        int layers = weights.Modules.Select(m => m.Layer).Distinct().Count();
        return $"rank {string.Join('/', ranks)}; {string.Join(", ", targets)}; {layers} layers";
    }
}
