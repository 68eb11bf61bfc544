using System.Text.Json.Nodes;

namespace Serving.Tests.Shared;

/// <summary>A small Llama config.json (8/2 heads, hidden 256) as a fresh object each call, for tests that edit one field.</summary>
internal static class LlamaConfigJson
{
    public static JsonObject Create() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["hidden_size"] = 256, ["intermediate_size"] = 512, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 2, ["vocab_size"] = 1000,
        ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0, ["eos_token_id"] = new JsonArray(1, 2),
    };
}
