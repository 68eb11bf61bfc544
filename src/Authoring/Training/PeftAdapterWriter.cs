using System.Text.Json.Nodes;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;

namespace Serving.Authoring.Training;

/// <summary>
/// Writes a Hugging Face PEFT LoRA adapter folder: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> with
/// PEFT's tensor names (<c>base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight</c> [r, in],
/// <c>...lora_B.weight</c> [out, r]), float32; a DoRA adapter adds <c>...lora_magnitude_vector.weight</c> [out] per module
/// (the name PEFT ≥ 0.12 writes) and sets <c>use_dora</c>.
/// </summary>
internal static class PeftAdapterWriter
{
    /// <param name="adapterDir">Folder to write (created).</param>
    /// <param name="baseModel">Recorded as <c>base_model_name_or_path</c>.</param>
    /// <param name="rank">r.</param>
    /// <param name="alpha">lora_alpha.</param>
    /// <param name="useRsLora">Scale alpha/√r instead of alpha/r.</param>
    /// <param name="tensors">Per adapted module: layer, target, and the bytes (float32, row-major) of A [r, in] and B [out, r], produced on demand.</param>
    /// <param name="magnitudes">DoRA: per module, the bytes (float32) of its magnitude vector [out]; null for plain LoRA.</param>
    /// <param name="layerPrefix">Where the decoder layers live in the base model's module tree (a multimodal model's language model: <c>language_model.model.</c>).</param>
    /// <param name="otherModules">LoRA weights of modules outside the decoder layers (a vision tower's), by full module name, written as given.</param>
    public static void Write(string adapterDir, string baseModel, int rank, double alpha, bool useRsLora,
        IReadOnlyList<(int Layer, LoraTarget Target, int In, int Out, Func<byte[]> A, Func<byte[]> B)> tensors,
        IReadOnlyDictionary<(int Layer, LoraTarget Target), Func<byte[]>>? magnitudes = null, string layerPrefix = "model.",
        IEnumerable<(string Module, long[] AShape, byte[] A, long[] BShape, byte[] B)>? otherModules = null)
    {
        Directory.CreateDirectory(adapterDir);
        var entries = new List<SafetensorsWriter.Entry>();
        var moduleNames = tensors.Select(t => LoraTargets.ModuleName(t.Target)).ToList();
        foreach (var (module, aShape, a, bShape, b) in otherModules ?? [])
        {
            entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.{module}.lora_A.weight", SafetensorsDtype.F32, aShape, a));
            entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.{module}.lora_B.weight", SafetensorsDtype.F32, bShape, b));
            moduleNames.Add(module[(module.LastIndexOf('.') + 1)..]);
        }

        foreach (var (layer, target, inF, outF, a, b) in tensors)
        {
            string prefix = $"base_model.model.{layerPrefix}layers.{layer}.{LoraTargets.ModulePath(target)}";
            entries.Add(new(prefix + ".lora_A.weight", SafetensorsDtype.F32, [rank, inF], a));
            entries.Add(new(prefix + ".lora_B.weight", SafetensorsDtype.F32, [outF, rank], b));
            if (magnitudes is not null)
                entries.Add(new(prefix + ".lora_magnitude_vector.weight", SafetensorsDtype.F32, [outF], magnitudes[(layer, target)]));
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
            ["target_modules"] = new JsonArray(moduleNames.Distinct().Select(t => (JsonNode)t).ToArray()),
            ["use_rslora"] = useRsLora,
            ["use_dora"] = magnitudes is not null,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["modules_to_save"] = null,
        };
        File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), json.ToJsonString(new() { WriteIndented = true }));
    }
}
