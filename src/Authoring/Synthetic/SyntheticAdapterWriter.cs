using Serving.Authoring.Training;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// Writes a random Hugging Face PEFT LoRA adapter for a model folder (see <see cref="PeftAdapterWriter"/> for the layout).
/// B is non-zero (unlike a freshly initialised PEFT adapter) so the adapter changes outputs. With <c>dora</c> it is a DoRA
/// adapter whose magnitudes are the row norms ‖W + s·B·A‖ of the model's float32 weights times a random factor in
/// [0.8, 1.2), so each output row is rescaled by about that much, as a trained DoRA adapter's are.
/// </summary>
public static class SyntheticAdapterWriter
{
    public static readonly IReadOnlyList<string> AllTargets = LoraTargets.All.Select(LoraTargets.ModuleName).ToArray();

    /// <summary>Writes a PEFT LoRA (or DoRA) adapter of random weights for the model in <paramref name="modelDir"/>.</summary>
    /// <param name="adapterDir">Folder to write.</param>
    /// <param name="modelDir">The base model's folder (its config.json gives the shapes).</param>
    /// <param name="rank">r.</param>
    /// <param name="alpha">lora_alpha.</param>
    /// <param name="targets">Module names (q_proj, …; on Phi-3 its stacked qkv_proj and gate_up_proj) adapted in every layer.</param>
    /// <param name="seed">Same seed, same bytes.</param>
    /// <param name="useRsLora">Scale alpha/√r.</param>
    /// <param name="dora">A DoRA adapter: magnitude vectors from the base weights' norms.</param>
    /// <param name="layerPrefix">
    /// Where the tensors' decoder layers live: <c>model.</c>, or a multimodal model's language model
    /// (<c>language_model.model.</c>, <c>model.language_model.</c>); the values are the same under any.
    /// </param>
    /// <param name="visionModules">Also LoRA weights of a vision tower's and a projector's module, as "all-linear" on a multimodal model gives.</param>
    public static void Write(string adapterDir, string modelDir, int rank, double alpha, IReadOnlyList<string> targets, ulong seed, bool useRsLora = false,
        bool dora = false, string layerPrefix = "model.", bool visionModules = false)
    {
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var tensors = new List<(int, LoraTarget, int, int, Func<byte[]>, Func<byte[]>)>();
        var stacked = new List<(string Module, long[] AShape, byte[] A, long[] BShape, byte[] B)>();
        for (int layer = 0; layer < config.NumLayers; layer++)
        {
            foreach (string name in targets)
            {
                if (StackedModule(config, name) is { } members)
                {
                    // Phi-3's stacked module: one A over the shared input, one B over the members' outputs.
                    int stackedIn = LoraTargets.Shape(config, members[0]).In, stackedOut = members.Sum(t => LoraTargets.Shape(config, t).Out);
                    string module = $"{layerPrefix}layers.{layer}.{(members[0] == LoraTarget.Q ? "self_attn." : "mlp.")}{name}";
                    stacked.Add((module, [rank, stackedIn], TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(module + "A")), (long)rank * stackedIn, 0,
                            1.0 / Math.Sqrt(stackedIn), SafetensorsDtype.F32),
                        [stackedOut, rank], TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(module + "B")), (long)stackedOut * rank, 0,
                            1.0 / Math.Sqrt(rank), SafetensorsDtype.F32)));
                    continue;
                }

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

        var magnitudes = dora
            ? tensors.ToDictionary(t => (t.Item1, t.Item2), t => (Func<byte[]>)(() => Magnitude(modelDir, t.Item1, t.Item2, t.Item3, t.Item4, rank,
                useRsLora ? alpha / Math.Sqrt(rank) : alpha / rank, t.Item5(), t.Item6(), seed)))
            : null;
        if (dora && stacked.Count > 0)
            throw new ArgumentException("DoRA magnitudes of stacked modules are not generated");
        PeftAdapterWriter.Write(adapterDir, Path.GetFullPath(modelDir), rank, alpha, useRsLora, tensors, magnitudes, layerPrefix,
            [.. stacked, .. visionModules ? VisionModules(rank, seed) : []]);
    }

    /// <summary>The projections a Phi-3 model's stacked module of that name covers; null for another name or model.</summary>
    private static LoraTarget[]? StackedModule(ModelConfig config, string name) => !config.FusedCheckpointProjections ? null : name switch
    {
        "qkv_proj" => [LoraTarget.Q, LoraTarget.K, LoraTarget.V],
        "gate_up_proj" => [LoraTarget.Gate, LoraTarget.Up],
        _ => null,
    };

    /// <summary>LoRA A and B of a vision tower's attention projection and a projector (width 32), by full module name.</summary>
    private static IEnumerable<(string Module, long[] AShape, byte[] A, long[] BShape, byte[] B)> VisionModules(int rank, ulong seed) =>
        new[] { "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", "multi_modal_projector.mm_input_projection" }.Select(module => (module,
            new long[] { rank, 32 }, TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(module + "A")), rank * 32L, 0, 0.1, SafetensorsDtype.F32),
            new long[] { 32, rank }, TensorBytes.Normal(new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(module + "B")), 32L * rank, 0, 0.1, SafetensorsDtype.F32)));

    /// <summary>‖W + scale·B·A‖ per output row (float32 weights read from the model's safetensors) times U[0.8, 1.2).</summary>
    private static byte[] Magnitude(string modelDir, int layer, LoraTarget target, int inF, int outF, int rank, double scale, byte[] a, byte[] b, ulong seed)
    {
        string name = $"model.layers.{layer}.{LoraTargets.ModulePath(target)}.weight";
        foreach (string path in Directory.GetFiles(modelDir, "*.safetensors"))
        {
            var file = SafetensorsFile.Open(path);
            if (!file.Tensors.TryGetValue(name, out var info))
                continue;
            if (info.Dtype != SafetensorsDtype.F32)
                throw new ArgumentException($"{name} is {info.Dtype}; DoRA magnitudes are computed from float32 weights");
            var bytes = new byte[info.ByteLength];
            file.ReadInto(info, bytes);
            using var scope = TorchSharp.torch.NewDisposeScope();
            var w = Tensor(bytes, [outF, inF]);
            var merged = w.Plus(Tensor(b, [outF, rank]).matmul(Tensor(a, [rank, inF])).Times(scale));
            var norms = merged.mul(merged).sum(1).sqrt().data<float>().ToArray();
            var random = new SeededRandom(seed ^ SyntheticModelWriter.Fnv1a(name + ".magnitude"));
            var values = norms.Select(n => (float)(n * (0.8 + 0.4 * random.NextDouble()))).ToArray();
            return TensorBytes.Encode(values, SafetensorsDtype.F32);
        }

        throw new ArgumentException($"{modelDir}: no tensor {name} to take DoRA norms from");
    }

    private static TorchSharp.torch.Tensor Tensor(byte[] bytes, long[] shape)
    {
        var values = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return TorchSharp.torch.tensor(values, shape);
    }
}
