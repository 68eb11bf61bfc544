using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Writes a random PEFT LoRA adapter of a mixture-of-experts model's experts, as PEFT saves one: on a model whose
/// checkpoint stacks its experts (gpt-oss) through <c>target_parameters</c> — per layer one A <c>[E·r, in]</c> and one B
/// <c>[out, r·E]</c> for <c>mlp.experts.gate_up_proj</c> (its tensors under <c>base_layer.</c>, the inner of the two
/// nested wrappers) and for <c>mlp.experts.down_proj</c>, as the gpt-oss fine-tuning recipe writes them; on a model with a
/// module per expert (Mixtral's <c>w1/w3/w2</c>, Qwen-MoE's <c>gate_proj/up_proj/down_proj</c>) a LoRA module per expert
/// and projection. Optionally the attention's projections too, in every layer.
/// </summary>
public static class SyntheticExpertAdapterWriter
{
    /// <param name="adapterDir">Folder to write.</param>
    /// <param name="modelDir">The base model's folder (its config.json gives the shapes).</param>
    /// <param name="rank">r.</param>
    /// <param name="alpha">lora_alpha.</param>
    /// <param name="layers">The layers whose experts are adapted.</param>
    /// <param name="seed">Same seed, same bytes.</param>
    /// <param name="attention">Attention module names (<c>q_proj</c>, …) adapted in every layer besides.</param>
    public static void Write(string adapterDir, string modelDir, int rank, double alpha, IReadOnlyList<int> layers, ulong seed, IReadOnlyList<string>? attention = null)
    {
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var moe = config.Experts ?? throw new ArgumentException($"{modelDir} is not a mixture-of-experts model");
        var entries = new List<SafetensorsWriter.Entry>();
        void Add(string module, long[] aShape, long[] bShape)
        {
            foreach (var (ab, shape) in new[] { ("A", aShape), ("B", bShape) })
            {
                string name = $"base_model.model.{module}.lora_{ab}.weight";
                double std = ab == "A" ? 1.0 / Math.Sqrt(shape[1]) : 1.0 / Math.Sqrt(rank);
                entries.Add(SafetensorsWriter.Entry.Of(name, SafetensorsDtype.F32, shape,
                    TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(name)), shape[0] * shape[1], 0, std, SafetensorsDtype.F32)));
            }
        }

        var parameters = new List<string>();
        var modules = new List<string>(attention ?? []);
        for (int layer = 0; layer < config.NumLayers; layer++)
            foreach (string name in attention ?? [])
            {
                var target = LoraTargets.Parse(name) ?? throw new ArgumentException($"'{name}' is not an attention projection");
                var (inF, outF) = LoraTargets.Shape(config, target);
                Add($"model.layers.{layer}.{LoraTargets.ModulePath(target)}", [rank, inF], [outF, rank]);
            }

        bool mixtral = config.Architecture == "MixtralForCausalLM";
        int h = config.HiddenSize, inter = moe.IntermediateSize, experts = moe.Experts;
        foreach (int layer in layers)
        {
            if (moe.StackedExperts)
            {
                Add($"model.layers.{layer}.mlp.experts.base_layer", [(long)experts * rank, h], [2L * inter, (long)rank * experts]);
                Add($"model.layers.{layer}.mlp.experts", [(long)experts * rank, inter], [h, (long)rank * experts]);
                parameters.AddRange([$"{layer}.mlp.experts.gate_up_proj", $"{layer}.mlp.experts.down_proj"]);
                continue;
            }

            for (int e = 0; e < experts; e++)
                foreach (var (module, inF, outF) in new[] { (mixtral ? "w1" : "gate_proj", h, inter), (mixtral ? "w3" : "up_proj", h, inter), (mixtral ? "w2" : "down_proj", inter, h) })
                {
                    Add($"model.layers.{layer}.{(mixtral ? "block_sparse_moe" : "mlp")}.experts.{e}.{module}", [rank, inF], [outF, rank]);
                    if (!modules.Contains(module))
                        modules.Add(module);
                }
        }

        Directory.CreateDirectory(adapterDir);
        SafetensorsWriter.Write(Path.Combine(adapterDir, "adapter_model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = Path.GetFullPath(modelDir),
            ["r"] = rank,
            ["lora_alpha"] = alpha,
            ["lora_dropout"] = 0.0,
            ["target_modules"] = modules.Count == 0 ? null : new JsonArray([.. modules.Select(m => (JsonNode)m)]),
            ["target_parameters"] = parameters.Count == 0 ? null : new JsonArray([.. parameters.Select(p => (JsonNode)p)]),
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
        };
        File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), json.ToJsonString(new() { WriteIndented = true }));
    }
}
