using System.Text.Json.Nodes;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// An EmbeddingGemma-shaped folder at a test's scale: a Gemma 3 transformer saved bare (no lm_head, no <c>model.</c>
/// prefix) under <c>Gemma3TextModel</c> with <c>use_bidirectional_attention</c> and a sliding window of 6 (3 each way),
/// then sentence-transformers' mean pooling, two Dense modules (hidden → 2·hidden → hidden / 2, identity) and Normalize,
/// as google/embeddinggemma-300m ships (768 → 3,072 → 768).
/// </summary>
public static class EmbeddingGemmaCheckpoint
{
    /// <summary>Writes the folder; <paramref name="bidirectional"/> false writes the same weights attending causally (a check's twin).</summary>
    public static void Write(string dir, SyntheticModelSpec spec, bool bidirectional = true)
    {
        SyntheticModelWriter.Write(dir, spec with { Architecture = "Gemma3ForCausalLM", TieWordEmbeddings = true, EmbeddingModel = true });
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray("Gemma3TextModel");
        config["sliding_window"] = 6;
        config["use_bidirectional_attention"] = bidirectional;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new() { WriteIndented = true }));
        int hidden = config["hidden_size"]!.GetValue<int>();
        SentenceTransformersWriter.Write(dir, hidden, "mean_tokens", [new(2 * hidden), new(hidden / 2)], spec.Seed);
    }
}
