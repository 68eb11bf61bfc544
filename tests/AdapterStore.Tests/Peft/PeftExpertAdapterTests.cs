using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>
/// PEFT adapters of a mixture of experts' experts: gpt-oss's stacked experts through <c>target_parameters</c> (PEFT's
/// <c>ParamWrapper</c> layout) read into per-expert modules whose updates are PEFT's own delta, and Mixtral's per-expert
/// modules read as they are; what does not fit is refused naming the tensor.
/// </summary>
public sealed class PeftExpertAdapterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-experts-" + Guid.NewGuid().ToString("N"));

    private (string Dir, ModelConfig Config) Model(string architecture)
    {
        string dir = Path.Combine(_root, architecture);
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, new SyntheticModelSpec { Architecture = architecture, Seed = 8, ExpertIntermediate = architecture == "GptOssForCausalLM" ? 48 : null });
        return (dir, ModelConfig.Load(Path.Combine(dir, "config.json")));
    }

    private static float[] Floats(string adapter, string tensor)
    {
        var file = SafetensorsFile.Open(Path.Combine(adapter, "adapter_model.safetensors"));
        var info = file.Tensors[tensor];
        var bytes = new byte[info.ByteLength];
        file.ReadInto(info, bytes);
        return MemoryMarshal.Cast<byte, float>(bytes).ToArray();
    }

    /// <summary>
    /// Each expert's gate and up modules give gate_up_proj's even and odd columns of PEFT's
    /// <c>ΔW = scale · einsum("o r e, e r i -> e i o", B.reshape(out, r, E), A.reshape(E, r, in))</c>, and its down module down_proj's.
    /// </summary>
    [Fact]
    public void Read_GptOssTargetParameters_EachExpertsModulesArePeftsDelta()
    {
        var (model, c) = Model("GptOssForCausalLM");
        string adapter = Path.Combine(_root, "gpt-oss-adapter");
        SyntheticExpertAdapterWriter.Write(adapter, model, 4, 8, [1], 3, attention: ["q_proj"]);
        int r = 4, experts = c.Experts!.Experts, h = c.HiddenSize, inter = c.Experts.IntermediateSize;

        var weights = PeftAdapterReader.Read(adapter, "experts", c, 16);

        Assert.Equal(c.NumLayers + 3 * experts, weights.Modules.Count);
        foreach (var (prefix, inF, outF, members) in new[] { ("experts.base_layer", h, 2 * inter, new[] { LoraTarget.Gate, LoraTarget.Up }), ("experts", inter, h, new[] { LoraTarget.Down }) })
        {
            var a = Floats(adapter, $"base_model.model.model.layers.1.mlp.{prefix}.lora_A.weight");
            var b = Floats(adapter, $"base_model.model.model.layers.1.mlp.{prefix}.lora_B.weight");
            for (int e = 0; e < experts; e++)
                for (int k = 0; k < members.Length; k++)
                {
                    var m = Assert.Single(weights.Modules, m => m.Expert == e && m.Target == members[k]);
                    Assert.Equal((1, r, 2f), (m.Layer, m.Rank, m.Scale));
                    for (int row = 0; row < outF / members.Length; row++)
                        for (int i = 0; i < inF; i += 7)
                        {
                            int o = row * members.Length + k;         // gate_up_proj interleaves gate (even) and up (odd) columns
                            double peft = 0, read = 0;
                            for (int j = 0; j < r; j++)
                            {
                                peft += (double)b[(long)o * r * experts + j * experts + e] * a[((long)e * r + j) * inF + i];
                                read += (double)m.B[row * r + j] * m.A[j * inF + i];
                            }

                            Assert.Equal(peft, read, 1e-6);
                        }
                }
        }
    }

    [Fact]
    public void Read_MixtralPerExpertModules_W1GateW3UpW2Down()
    {
        var (model, c) = Model("MixtralForCausalLM");
        string adapter = Path.Combine(_root, "mixtral-adapter");
        SyntheticExpertAdapterWriter.Write(adapter, model, 4, 8, [0], 3);

        var weights = PeftAdapterReader.Read(adapter, "experts", c, 16);

        Assert.Equal(3 * c.Experts!.Experts, weights.Modules.Count);
        foreach (var (module, target) in new[] { ("w1", LoraTarget.Gate), ("w3", LoraTarget.Up), ("w2", LoraTarget.Down) })
        {
            var m = Assert.Single(weights.Modules, m => m.Expert == 1 && m.Target == target);
            Assert.Equal(Floats(adapter, $"base_model.model.model.layers.0.block_sparse_moe.experts.1.{module}.lora_A.weight"), m.A);
            Assert.Equal(Floats(adapter, $"base_model.model.model.layers.0.block_sparse_moe.experts.1.{module}.lora_B.weight"), m.B);
        }
    }

    public static TheoryData<string, string, string> Refusals => new()
    {
        { "MixtralForCausalLM", "router", "router" },
        { "MixtralForCausalLM", "expert-beyond", "targets expert 99" },
        { "MixtralForCausalLM", "expert-beyond-int", "targets expert 2147483647" },
        { "MixtralForCausalLM", "layer-beyond-int", "targets layer 2147483647" },
        { "MixtralForCausalLM", "stacked", "are modules" },
        { "GptOssForCausalLM", "per-expert", "does not have" },
        { "GptOssForCausalLM", "not-targeted", "not selected by target_parameters" },
        { "GptOssForCausalLM", "dora", "DoRA on experts" },
        { "GptOssForCausalLM", "wrong-shape", "stacked experts take" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Read_ExpertLoraThatDoesNotFit_RefusedNamingWhy(string architecture, string change, string why)
    {
        var (model, c) = Model(architecture);
        string adapter = Path.Combine(_root, $"{architecture}-{change}");
        SyntheticExpertAdapterWriter.Write(adapter, model, 4, 8, [c.NumLayers - 1], 3);
        string weightsPath = Path.Combine(adapter, "adapter_model.safetensors"), configPath = Path.Combine(adapter, "adapter_config.json");
        var entries = SafetensorsEntries.Read(weightsPath);
        void AddPair(string module, long[] a, long[] b) => SafetensorsEntries.AddZeroPair(entries, module, a, b);

        int h = c.HiddenSize, inter = c.Experts!.IntermediateSize, e = c.Experts.Experts;
        var config = JsonNode.Parse(File.ReadAllText(configPath))!;
        switch (change)
        {
            case "router":
                AddPair("model.layers.0.block_sparse_moe.gate", [4, h], [e, 4]);
                break;
            case "expert-beyond":
                AddPair("model.layers.0.block_sparse_moe.experts.99.w1", [4, h], [inter, 4]);
                break;
            case "expert-beyond-int":
                AddPair("model.layers.0.block_sparse_moe.experts.99999999999999999999.w1", [4, h], [inter, 4]);
                break;
            case "layer-beyond-int":
                AddPair("model.layers.99999999999999999999.self_attn.q_proj", [4, h], [h, 4]);
                break;
            case "stacked":
                AddPair("model.layers.0.mlp.experts", [4L * e, h], [2L * inter, 4L * e]);
                break;
            case "per-expert":
                AddPair("model.layers.0.mlp.experts.0.gate_proj", [4, h], [inter, 4]);
                break;
            case "not-targeted":
                config["target_parameters"] = new JsonArray($"{c.NumLayers - 1}.mlp.experts.gate_up_proj");
                break;
            case "dora":
                config["use_dora"] = true;
                break;
            case "wrong-shape":
                entries.RemoveAll(t => t.Name.Contains(".experts.lora_", StringComparison.Ordinal));
                AddPair($"model.layers.{c.NumLayers - 1}.mlp.experts", [4L * e, h + 1], [h, 4L * e]);
                break;
        }

        SafetensorsWriter.Write(weightsPath, entries);
        File.WriteAllText(configPath, config.ToJsonString());

        var error = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(adapter, change, c, 16));

        Assert.Contains(why, error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
