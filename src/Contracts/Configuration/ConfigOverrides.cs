using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>
/// vLLM's <c>--hf-overrides</c>: fields laid over a checkpoint's config.json before it is read — an object into an object
/// field by field, anything else replacing the field (<c>{"max_position_embeddings": 65536}</c>,
/// <c>{"rope_scaling": {"factor": 4.0}}</c>, <c>{"use_bidirectional_attention": true}</c>).
/// </summary>
public static class ConfigOverrides
{
    /// <summary><paramref name="config"/> with <paramref name="overrides"/> laid over it (in place), returned.</summary>
    public static JsonObject Apply(JsonObject config, JsonObject overrides)
    {
        foreach (var (key, value) in overrides)
        {
            if (value is JsonObject inner && config[key] is JsonObject existing)
                Apply(existing, inner);
            else
                config[key] = value?.DeepClone();
        }

        return config;
    }
}
