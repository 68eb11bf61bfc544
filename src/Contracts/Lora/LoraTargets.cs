using Serving.Contracts.Configuration;

namespace Serving.Contracts.Lora;

public static class LoraTargets
{
    public static readonly IReadOnlyList<LoraTarget> All = Enum.GetValues<LoraTarget>();

    /// <summary>
    /// The projections of a layer grouped by the fused output they write (qkv, o, gate/up, down), each group in column
    /// order: the members of a group read the same input.
    /// </summary>
    public static readonly IReadOnlyList<IReadOnlyList<LoraTarget>> FusedOutputs =
        [[LoraTarget.Q, LoraTarget.K, LoraTarget.V], [LoraTarget.O], [LoraTarget.Gate, LoraTarget.Up], [LoraTarget.Down]];

    /// <summary>
    /// The projections an adapter may adapt on <paramref name="c"/>: all, or on a mixture-of-experts model the attention's
    /// (q, k, v, o) — its MLPs are experts, whose LoRA (one per expert) this server does not serve.
    /// </summary>
    public static IReadOnlyList<LoraTarget> Adaptable(ModelConfig c) => c.Experts is null ? All : [LoraTarget.Q, LoraTarget.K, LoraTarget.V, LoraTarget.O];

    /// <summary>The PEFT module name, e.g. <c>q_proj</c>.</summary>
    public static string ModuleName(LoraTarget t) => t switch
    {
        LoraTarget.Q => "q_proj",
        LoraTarget.K => "k_proj",
        LoraTarget.V => "v_proj",
        LoraTarget.O => "o_proj",
        LoraTarget.Gate => "gate_proj",
        LoraTarget.Up => "up_proj",
        LoraTarget.Down => "down_proj",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>The HF parameter path inside a layer, e.g. <c>self_attn.q_proj</c>.</summary>
    public static string ModulePath(LoraTarget t) => (t <= LoraTarget.O ? "self_attn." : "mlp.") + ModuleName(t);

    public static LoraTarget? Parse(string moduleName) => All.Cast<LoraTarget?>().FirstOrDefault(t => ModuleName(t!.Value) == moduleName);

    /// <summary>(in_features, out_features) of the projection.</summary>
    public static (int In, int Out) Shape(ModelConfig c, LoraTarget t) => t switch
    {
        LoraTarget.Q => (c.HiddenSize, c.NumHeads * c.HeadDim),
        LoraTarget.K or LoraTarget.V => (c.HiddenSize, c.NumKvHeads * c.HeadDim),
        LoraTarget.O => (c.NumHeads * c.HeadDim, c.HiddenSize),
        LoraTarget.Gate or LoraTarget.Up => (c.HiddenSize, c.IntermediateSize),
        LoraTarget.Down => (c.IntermediateSize, c.HiddenSize),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
