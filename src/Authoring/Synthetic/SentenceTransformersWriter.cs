using System.Text.Json.Nodes;
using Serving.Contracts.Safetensors;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Writes sentence-transformers' module list into a model folder: the transformer, a Pooling module of one mode, Dense
/// modules of random weights (EmbeddingGemma's shape: 768 → 3,072 → 768, identity activations), then Normalize.
/// </summary>
public static class SentenceTransformersWriter
{
    /// <summary>One Dense module: its outputs, whether it has a bias, and whether tanh follows it (else identity).</summary>
    public readonly record struct DenseModule(int OutFeatures, bool Bias = false, bool Tanh = false);

    /// <param name="dir">The model folder.</param>
    /// <param name="hidden">The transformer's hidden size: the Pooling module's and the first Dense module's width.</param>
    /// <param name="poolingMode">The <c>pooling_mode_*</c> set (<c>lasttoken</c>, <c>mean_tokens</c>, <c>cls_token</c>, …).</param>
    /// <param name="dense">The Dense modules after pooling, in order.</param>
    /// <param name="seed">Seeds the Dense weights.</param>
    public static void Write(string dir, int hidden, string poolingMode = "lasttoken", IReadOnlyList<DenseModule>? dense = null, ulong seed = 1)
    {
        var modules = new JsonArray(
            new JsonObject { ["idx"] = 0, ["name"] = "0", ["path"] = "", ["type"] = "sentence_transformers.models.Transformer" },
            new JsonObject { ["idx"] = 1, ["name"] = "1", ["path"] = "1_Pooling", ["type"] = "sentence_transformers.models.Pooling" });
        Directory.CreateDirectory(Path.Combine(dir, "1_Pooling"));
        var pooling = new JsonObject { ["word_embedding_dimension"] = hidden };
        foreach (string mode in new[] { "cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken" })
            pooling["pooling_mode_" + mode] = mode == poolingMode;
        pooling["include_prompt"] = true;
        File.WriteAllText(Path.Combine(dir, "1_Pooling", "config.json"), pooling.ToJsonString(new() { WriteIndented = true }));

        int inputs = hidden;
        foreach (var (module, i) in (dense ?? []).Select((m, i) => (m, i)))
        {
            string folder = $"{2 + i}_Dense";
            modules.Add(new JsonObject { ["idx"] = 2 + i, ["name"] = $"{2 + i}", ["path"] = folder, ["type"] = "sentence_transformers.models.Dense" });
            Directory.CreateDirectory(Path.Combine(dir, folder));
            File.WriteAllText(Path.Combine(dir, folder, "config.json"), new JsonObject
            {
                ["in_features"] = inputs, ["out_features"] = module.OutFeatures, ["bias"] = module.Bias,
                ["activation_function"] = module.Tanh ? "torch.nn.modules.activation.Tanh" : "torch.nn.modules.linear.Identity",
            }.ToJsonString());
            var random = new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(folder));
            var tensors = new List<SafetensorsWriter.Entry>
            {
                SafetensorsWriter.Entry.Of("linear.weight", SafetensorsDtype.F32, [module.OutFeatures, inputs],
                    TensorBytes.Normal(random, (long)module.OutFeatures * inputs, 0, 1.0 / Math.Sqrt(inputs), SafetensorsDtype.F32)),
            };
            if (module.Bias)
                tensors.Add(SafetensorsWriter.Entry.Of("linear.bias", SafetensorsDtype.F32, [module.OutFeatures], TensorBytes.Normal(random, module.OutFeatures, 0, 0.1, SafetensorsDtype.F32)));
            SafetensorsWriter.Write(Path.Combine(dir, folder, "model.safetensors"), tensors);
            inputs = module.OutFeatures;
        }

        int last = modules.Count;
        modules.Add(new JsonObject { ["idx"] = last, ["name"] = $"{last}", ["path"] = $"{last}_Normalize", ["type"] = "sentence_transformers.models.Normalize" });
        File.WriteAllText(Path.Combine(dir, "modules.json"), modules.ToJsonString(new() { WriteIndented = true }));
    }
}
