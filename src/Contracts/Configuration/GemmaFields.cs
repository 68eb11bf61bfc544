using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>The settings of a Gemma config.json that this engine does not implement, refused by name rather than served otherwise.</summary>
internal static class GemmaFields
{
    public static void CheckSupported(JsonObject o, string source)
    {
        foreach (string cap in new[] { "attn_logit_softcapping", "final_logit_softcapping" })
            if (o[cap] is JsonValue v && v.GetValue<double>() != 0)
                throw new ModelConfigException($"{source}: {cap} (Gemma 2's soft-capping) is not supported");
        if (ModelConfig.OptionalBool(o, "use_bidirectional_attention") == true)
            throw new ModelConfigException($"{source}: use_bidirectional_attention (EmbeddingGemma) is not supported: the engine attends causally");
    }
}
