using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;

namespace Serving.AdapterStore.Peft;

/// <summary>
/// Which projections a PEFT module of the base model adapts. Llama-family models name each (<c>self_attn.q_proj</c>, …);
/// Phi-3 has q/k/v as one <c>self_attn.qkv_proj</c> and gate/up as one <c>mlp.gate_up_proj</c>, whose LoRA — one A over
/// the shared input, one B over the stacked outputs — is each member's LoRA with that A and its rows of B, exactly.
/// </summary>
internal static class PeftModules
{
    /// <summary>The projections module <paramref name="block"/>.<paramref name="module"/> adapts, in its output rows' order; null where the model has no such module.</summary>
    public static IReadOnlyList<LoraTarget>? Targets(string block, string module, ModelConfig model)
    {
        if (model.FusedCheckpointProjections)
            return (block, module) switch
            {
                ("self_attn", "qkv_proj") => [LoraTarget.Q, LoraTarget.K, LoraTarget.V],
                ("self_attn", "o_proj") => [LoraTarget.O],
                ("mlp", "gate_up_proj") => [LoraTarget.Gate, LoraTarget.Up],
                ("mlp", "down_proj") => [LoraTarget.Down],
                _ => null,
            };
        return LoraTargets.Parse(module) is LoraTarget target && LoraTargets.ModulePath(target) == $"{block}.{module}" ? [target] : null;
    }

    /// <summary>The module's path inside a layer, e.g. <c>self_attn.qkv_proj</c>.</summary>
    public static string Path(IReadOnlyList<LoraTarget> targets) => targets.Count == 1 ? LoraTargets.ModulePath(targets[0])
        : targets[0] == LoraTarget.Q ? "self_attn.qkv_proj" : "mlp.gate_up_proj";
}
