using Serving.Engine.Configuration;

namespace Serving.Engine.Lora;

internal static class LoraTargets
{
    public static readonly IReadOnlyList<LoraTarget> All = Enum.GetValues<LoraTarget>();

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

    /// <summary>Where the projection's output sits in the engine's fused output (qkv or gate/up), as (offset, width).</summary>
    public static (int Offset, int Width) OutputSlice(ModelConfig c, LoraTarget t) => t switch
    {
        LoraTarget.Q => (0, c.NumHeads * c.HeadDim),
        LoraTarget.K => (c.NumHeads * c.HeadDim, c.NumKvHeads * c.HeadDim),
        LoraTarget.V => (c.NumHeads * c.HeadDim + c.NumKvHeads * c.HeadDim, c.NumKvHeads * c.HeadDim),
        LoraTarget.Gate => (0, c.IntermediateSize),
        LoraTarget.Up => (c.IntermediateSize, c.IntermediateSize),
        LoraTarget.O or LoraTarget.Down => (0, c.HiddenSize),
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
