using System.Text.Json.Nodes;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;

namespace Serving.Authoring.Training;

/// <summary>
/// Writes a Hugging Face PEFT LoRA adapter folder: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> with
/// PEFT's tensor names (<c>base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight</c> [r, in],
/// <c>...lora_B.weight</c> [out, r]), float32.
/// </summary>
internal static class PeftAdapterWriter
{
    /// <param name="adapterDir">Folder to write (created).</param>
    /// <param name="baseModel">Recorded as <c>base_model_name_or_path</c>.</param>
    /// <param name="rank">r.</param>
    /// <param name="alpha">lora_alpha.</param>
    /// <param name="useRsLora">Scale alpha/√r instead of alpha/r.</param>
    /// <param name="tensors">Per adapted module: layer, target, and the bytes (float32, row-major) of A [r, in] and B [out, r], produced on demand.</param>
    public static void Write(string adapterDir, string baseModel, int rank, double alpha, bool useRsLora,
        IReadOnlyList<(int Layer, LoraTarget Target, int In, int Out, Func<byte[]> A, Func<byte[]> B)> tensors)
    {
        Directory.CreateDirectory(adapterDir);
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var (layer, target, inF, outF, a, b) in tensors)
        {
            string prefix = $"base_model.model.model.layers.{layer}.{LoraTargets.ModulePath(target)}";
            entries.Add(new(prefix + ".lora_A.weight", SafetensorsDtype.F32, [rank, inF], a));
            entries.Add(new(prefix + ".lora_B.weight", SafetensorsDtype.F32, [outF, rank], b));
        }

        SafetensorsWriter.Write(Path.Combine(adapterDir, "adapter_model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = rank,
            ["lora_alpha"] = alpha,
            ["lora_dropout"] = 0.0,
            ["target_modules"] = new JsonArray(tensors.Select(t => LoraTargets.ModuleName(t.Target)).Distinct().Select(t => (JsonNode)t).ToArray()),
            ["use_rslora"] = useRsLora,
            ["use_dora"] = false,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["modules_to_save"] = null,
        };
        File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), json.ToJsonString(new() { WriteIndented = true }));
    }
}
