using System.Text.Json.Nodes;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// What an OLMo 2 or OLMo 3 checkpoint (<c>Olmo2ForCausalLM</c>, <c>Olmo3ForCausalLM</c>) holds beside a Llama's, at a
/// test's scale: no norm before attention or the MLP, RMSNorms over their outputs (<c>post_attention_layernorm</c>,
/// <c>post_feedforward_layernorm</c>), and q/k norms across all heads (<c>[Hq·D]</c>, <c>[Hkv·D]</c>). OLMo 3 adds sliding
/// layers (window 4) with every fourth whole-context, and YaRN (in its whole-context layers only, as OLMo 3's long-context
/// checkpoints scale it).
/// </summary>
internal static class OlmoCheckpoint
{
    public const string Olmo2 = "Olmo2ForCausalLM", Olmo3 = "Olmo3ForCausalLM";

    public static bool Is(string architecture) => architecture is Olmo2 or Olmo3;

    public static void AddConfigFields(JsonObject config, string architecture, int layers)
    {
        config["model_type"] = architecture == Olmo2 ? "olmo2" : "olmo3";
        config["rms_norm_eps"] = 1e-6;
        if (architecture != Olmo3)
            return;
        config["sliding_window"] = 4;
        // Every fourth layer whole-context, and the last, so a two-layer model has one of each.
        config["layer_types"] = new JsonArray([.. Enumerable.Range(0, layers)
            .Select(i => (JsonNode)(i % 4 == 3 || i == layers - 1 ? "full_attention" : "sliding_attention"))]);
        config["rope_theta"] = 500000.0;
        config["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = 8.0, ["beta_fast"] = 32.0, ["beta_slow"] = 1.0, ["original_max_position_embeddings"] = 32,
            ["attention_factor"] = 1.2079441541679836,
        };
    }
}
