using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>
/// The language model's fields of a Gemma 3 config.json, as transformers' <c>Gemma3TextConfig</c> fills them: the
/// multimodal checkpoints (<c>Gemma3ForConditionalGeneration</c>: gemma-3-4b/12b/27b and their fine-tunes) nest them in
/// <c>text_config</c> and list only what differs from the defaults (4B's: hidden and intermediate size, layers,
/// <c>rope_scaling</c>, <c>sliding_window</c>); <c>Gemma3ForCausalLM</c> (1B) lists them at the top.
/// </summary>
internal static class Gemma3TextConfig
{
    public const string Multimodal = "Gemma3ForConditionalGeneration";

    /// <summary>transformers' Gemma3TextConfig defaults, for the fields the engine reads.</summary>
    private static JsonObject Defaults() => new()
    {
        ["vocab_size"] = 262_208, ["hidden_size"] = 2304, ["intermediate_size"] = 9216, ["num_hidden_layers"] = 26,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 4, ["head_dim"] = 256, ["hidden_activation"] = "gelu_pytorch_tanh",
        ["max_position_embeddings"] = 131_072, ["rms_norm_eps"] = 1e-6, ["bos_token_id"] = 2, ["eos_token_id"] = 1,
        ["tie_word_embeddings"] = true, ["rope_theta"] = 1_000_000.0, ["query_pre_attn_scalar"] = 256, ["sliding_window"] = 4096,
        ["sliding_window_pattern"] = 6, ["rope_local_base_freq"] = 10_000.0,
    };

    /// <summary>
    /// The fields to parse: the defaults under the language model's own (a multimodal config's <c>text_config</c>, with
    /// its top-level token ids and dtype where the text config has none), the architecture kept as named.
    /// </summary>
    public static JsonObject Resolve(JsonObject o, string architecture, string source)
    {
        var resolved = Defaults();
        JsonObject fields = o;
        if (architecture == Multimodal)
        {
            fields = o["text_config"] as JsonObject ?? new JsonObject();
            foreach (string inherited in new[] { "bos_token_id", "eos_token_id", "torch_dtype", "dtype", "tie_word_embeddings" })
                if (o[inherited] is JsonNode value)
                    resolved[inherited] = value.DeepClone();
        }

        foreach (var (key, value) in fields)
            resolved[key] = value?.DeepClone();
        resolved["architectures"] = new JsonArray(architecture);
        return resolved;
    }
}
