using Serving.Authoring.Training;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Writes a random Hugging Face PEFT LoRA adapter for a model folder (see <see cref="PeftAdapterWriter"/> for the layout).
/// B is non-zero (unlike a freshly initialised PEFT adapter) so the adapter changes outputs.
/// </summary>
public static class SyntheticAdapterWriter
{
    public static readonly IReadOnlyList<string> AllTargets = LoraTargets.All.Select(LoraTargets.ModuleName).ToArray();

    public static void Write(string adapterDir, string modelDir, int rank, double alpha, IReadOnlyList<string> targets, ulong seed, bool useRsLora = false)
    {
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var tensors = new List<(int, LoraTarget, int, int, Func<byte[]>, Func<byte[]>)>();
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            foreach (string name in targets)
            {
                var target = LoraTargets.Parse(name)
                    ?? throw new ArgumentException($"unknown target module '{name}' (expected one of {string.Join(", ", AllTargets)})");
                var (inF, outF) = LoraTargets.Shape(config, target);
                string prefix = $"base_model.model.model.layers.{layer}.{LoraTargets.ModulePath(target)}";
                string a = prefix + ".lora_A.weight", b = prefix + ".lora_B.weight";
                tensors.Add((layer, target, inF, outF,
                    () => TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(a)), (long)rank * inF, 0, 1.0 / Math.Sqrt(inF), SafetensorsDtype.F32),
                    () => TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(b)), (long)outF * rank, 0, 1.0 / Math.Sqrt(rank), SafetensorsDtype.F32)));
            }
        }

        PeftAdapterWriter.Write(adapterDir, Path.GetFullPath(modelDir), rank, alpha, useRsLora, tensors);
    }
}
