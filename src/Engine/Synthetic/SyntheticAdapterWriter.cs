using System.Text.Json.Nodes;
using Serving.Engine.Configuration;
using Serving.Engine.Safetensors;
using Serving.Engine.Sampling;

namespace Serving.Engine.Synthetic;

/// <summary>
/// Writes a Hugging Face PEFT LoRA adapter for a model folder: adapter_config.json and adapter_model.safetensors
/// with PEFT's tensor names (<c>base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight</c> [r, in] and
/// <c>...lora_B.weight</c> [out, r]). B is non-zero (unlike a freshly initialised PEFT adapter) so the adapter changes outputs.
/// </summary>
internal static class SyntheticAdapterWriter
{
    public static readonly IReadOnlyList<string> AllTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public static void Write(string adapterDir, string modelDir, int rank, double alpha, IReadOnlyList<string> targets, ulong seed, bool useRsLora = false)
    {
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        Directory.CreateDirectory(adapterDir);
        var entries = new List<SafetensorsWriter.Entry>();
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            foreach (string target in targets)
            {
                var (inF, outF, module) = Shape(config, target);
                string prefix = $"base_model.model.model.layers.{layer}.{module}.{target}";
                string a = prefix + ".lora_A.weight", b = prefix + ".lora_B.weight";
                entries.Add(new(a, SafetensorsDtype.F32, [rank, inF],
                    () => TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(a)), (long)rank * inF, 0, 1.0 / Math.Sqrt(inF), SafetensorsDtype.F32)));
                entries.Add(new(b, SafetensorsDtype.F32, [outF, rank],
                    () => TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(b)), (long)outF * rank, 0, 1.0 / Math.Sqrt(rank), SafetensorsDtype.F32)));
            }
        }

        SafetensorsWriter.Write(Path.Combine(adapterDir, "adapter_model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = Path.GetFullPath(modelDir),
            ["r"] = rank,
            ["lora_alpha"] = alpha,
            ["lora_dropout"] = 0.0,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)t).ToArray()),
            ["use_rslora"] = useRsLora,
            ["use_dora"] = false,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["modules_to_save"] = null,
        };
        File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), json.ToJsonString(new() { WriteIndented = true }));
    }

    private static (int In, int Out, string Module) Shape(ModelConfig c, string target) => target switch
    {
        "q_proj" => (c.HiddenSize, c.NumHeads * c.HeadDim, "self_attn"),
        "k_proj" or "v_proj" => (c.HiddenSize, c.NumKvHeads * c.HeadDim, "self_attn"),
        "o_proj" => (c.NumHeads * c.HeadDim, c.HiddenSize, "self_attn"),
        "gate_proj" or "up_proj" => (c.HiddenSize, c.IntermediateSize, "mlp"),
        "down_proj" => (c.IntermediateSize, c.HiddenSize, "mlp"),
        _ => throw new ArgumentException($"unknown target module '{target}' (expected one of {string.Join(", ", AllTargets)})"),
    };
}
