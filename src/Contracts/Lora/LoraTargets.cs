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
    /// The layer projections an adapter may adapt on <paramref name="c"/>: all, or on a mixture-of-experts model the
    /// attention's (q, k, v, o) — its MLPs are experts, adapted expert by expert (<see cref="ExpertTargets"/>).
    /// </summary>
    public static IReadOnlyList<LoraTarget> Adaptable(ModelConfig c) => c.Experts is null ? All : [LoraTarget.Q, LoraTarget.K, LoraTarget.V, LoraTarget.O];

    /// <summary>The projections of one expert of a mixture of experts an adapter may adapt.</summary>
    public static readonly IReadOnlyList<LoraTarget> ExpertTargets = [LoraTarget.Gate, LoraTarget.Up, LoraTarget.Down];

    /// <summary>(in_features, out_features) of an expert's gate, up or down projection on <paramref name="c"/> (a mixture of experts).</summary>
    public static (int In, int Out) ExpertShape(ModelConfig c, LoraTarget t)
    {
        int inter = (c.Experts ?? throw new ArgumentException("the model has no mixture of experts", nameof(c))).IntermediateSize;
        return t switch
        {
            LoraTarget.Gate or LoraTarget.Up => (c.HiddenSize, inter),
            LoraTarget.Down => (inter, c.HiddenSize),
            _ => throw new ArgumentOutOfRangeException(nameof(t), $"an expert has no {ModuleName(t)}"),
        };
    }

    /// <summary>(in_features, out_features) of <paramref name="m"/>'s projection: an expert's or the layer's.</summary>
    public static (int In, int Out) Shape(ModelConfig c, LoraModuleWeights m) => m.Expert is null ? Shape(c, m.Target) : ExpertShape(c, m.Target);

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
