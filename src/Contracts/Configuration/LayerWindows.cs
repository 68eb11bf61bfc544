using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>Which layers of a config.json attend within <c>sliding_window</c>, as transformers decides it per architecture.</summary>
internal static class LayerWindows
{
    /// <summary>
    /// The window and the layers that do not slide. <c>layer_types</c> names each layer's kind where given; else Qwen2/3
    /// slide only with <c>use_sliding_window</c>, and then in the layers from <c>max_window_layers</c> on (HF's default
    /// 28); Gemma 3 attends to the whole context in every <c>sliding_window_pattern</c>-th layer (default 6), Gemma 2 in
    /// every second; OLMo 3 in every fourth (OLMo 2 never slides); other architectures (Mistral) slide in every layer.
    /// </summary>
    public static (int? Window, IReadOnlyList<int> FullLayers) Parse(JsonObject o, string architecture, int layers, string source)
    {
        bool qwen = architecture.StartsWith("Qwen", StringComparison.Ordinal), gemma = architecture.StartsWith("Gemma", StringComparison.Ordinal);
        bool olmo3 = architecture == "Olmo3ForCausalLM";
        if (architecture == "Olmo2ForCausalLM")
            return (null, []);
        int? window = ModelConfig.OptionalInt(o, "sliding_window") ?? (gemma || olmo3 ? 4096 : null);
        if (!(ModelConfig.OptionalBool(o, "use_sliding_window") ?? !qwen) || window is not int w)
            return (null, []);
        if (w < 1)
            throw new ModelConfigException($"{source}: sliding_window must be positive, got {w}");
        bool[] sliding;
        if (o["layer_types"] is JsonArray kinds && kinds.Count > 0)
        {
            if (kinds.Count != layers)
                throw new ModelConfigException($"{source}: layer_types names {kinds.Count} layers, the model has {layers}");
            sliding = [.. kinds.Select(k => k?.GetValue<string>() switch
            {
                "sliding_attention" => true,
                "full_attention" => false,
                var other => throw new ModelConfigException($"{source}: layer_types names '{other}' (supported: sliding_attention, full_attention)"),
            })];
        }
        else if (gemma)
        {
            int pattern = ModelConfig.OptionalInt(o, "sliding_window_pattern") ?? (architecture.StartsWith("Gemma2", StringComparison.Ordinal) ? 2 : 6);
            sliding = [.. Enumerable.Range(0, layers).Select(i => pattern <= 0 || (i + 1) % pattern != 0)];
        }
        else if (olmo3)
            sliding = [.. Enumerable.Range(0, layers).Select(i => (i + 1) % 4 != 0)];   // transformers' Olmo3Config: every fourth whole-context
        else if (qwen)
        {
            int firstSliding = ModelConfig.OptionalInt(o, "max_window_layers") ?? 28;
            sliding = [.. Enumerable.Range(0, layers).Select(i => i >= firstSliding)];
        }
        else
            sliding = [.. Enumerable.Repeat(true, layers)];

        return sliding.Any(s => s) ? (w, [.. Enumerable.Range(0, layers).Where(i => !sliding[i])]) : (null, []);
    }
}
