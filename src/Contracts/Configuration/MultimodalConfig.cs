using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>
/// Multimodal checkpoints whose language model is served for text: Gemma 3 4B+ (<see cref="Gemma3TextConfig"/>), and
/// Mistral Small 3.1/3.2 (<c>Mistral3ForConditionalGeneration</c>) and Pixtral (<c>LlavaForConditionalGeneration</c>),
/// whose <c>text_config</c> is a Mistral or Llama model's. Their tensors sit under a <c>language_model</c> prefix beside a
/// vision tower that text requests never run through.
/// </summary>
internal static class MultimodalConfig
{
    public static readonly IReadOnlyList<string> Architectures = [Gemma3TextConfig.Multimodal, "Mistral3ForConditionalGeneration", "LlavaForConditionalGeneration"];

    /// <summary>
    /// For a Mistral3 or Llava checkpoint: its <c>text_config</c> (with the top-level token ids and dtype where it has
    /// none) and the causal LM its <c>model_type</c> names; null for any other architecture.
    /// </summary>
    public static (JsonObject Fields, string Family)? TextModel(JsonObject o, string architecture, string source)
    {
        if (architecture is not ("Mistral3ForConditionalGeneration" or "LlavaForConditionalGeneration"))
            return null;
        var text = (o["text_config"] as JsonObject)?.DeepClone().AsObject()
            ?? throw new ModelConfigException($"{source}: {architecture} has no text_config");
        string family = text["model_type"]?.GetValue<string>() switch
        {
            "mistral" => "MistralForCausalLM",
            "llama" => "LlamaForCausalLM",
            var other => throw new ModelConfigException($"{source}: text_config.model_type '{other}' is not supported under {architecture} (supported: mistral, llama)"),
        };
        foreach (string inherited in new[] { "bos_token_id", "eos_token_id", "torch_dtype", "dtype", "tie_word_embeddings" })
            if (text[inherited] is null && o[inherited] is JsonNode value)
                text[inherited] = value.DeepClone();
        return (text, family);
    }
}
