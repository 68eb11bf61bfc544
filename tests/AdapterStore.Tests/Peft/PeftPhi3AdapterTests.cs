using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>
/// LoRA adapters of Phi-3 as PEFT saves them: its stacked <c>qkv_proj</c> and <c>gate_up_proj</c> adapted as one module
/// each (one A, one B over the stacked outputs), beside <c>o_proj</c> and <c>down_proj</c>.
/// </summary>
public sealed class PeftPhi3AdapterTests : IDisposable
{
    private const int Rank = 4;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-phi3-" + Guid.NewGuid().ToString("N"));
    private readonly ModelConfig _phi3;

    public PeftPhi3AdapterTests()
    {
        string model = Path.Combine(_root, "phi3");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Architecture = "Phi3ForCausalLM", Seed = 5 });
        _phi3 = ModelConfig.Load(Path.Combine(model, "config.json"));
    }

    private static float[] Values(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => (float)Math.Sin(seed * 1000 + i))];

    /// <summary>An adapter folder of <paramref name="modules"/> (layer-0 paths and their A/B shapes' out rows), values from <see cref="Values"/>.</summary>
    private string Adapter(string name, ModelConfig c, params (string Path, int Out)[] modules) => Adapter(name, c, dora: false, modules);

    /// <summary>The same, as DoRA with <paramref name="dora"/>: <c>use_dora</c> and each module's magnitudes over its stacked outputs.</summary>
    private string Adapter(string name, ModelConfig c, bool dora, params (string Path, int Out)[] modules)
    {
        string dir = Path.Combine(_root, name);
        Directory.CreateDirectory(dir);
        var entries = new List<SafetensorsWriter.Entry>();
        int seed = 0;
        foreach (var (path, outF) in modules)
        {
            int inF = path.EndsWith("down_proj", StringComparison.Ordinal) ? c.IntermediateSize : path.EndsWith("o_proj", StringComparison.Ordinal) ? c.NumHeads * c.HeadDim : c.HiddenSize;
            entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.model.layers.0.{path}.lora_A.weight", SafetensorsDtype.F32, [Rank, inF],
                MemoryMarshal.AsBytes(Values(Rank * inF, ++seed).AsSpan()).ToArray()));
            entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.model.layers.0.{path}.lora_B.weight", SafetensorsDtype.F32, [outF, Rank],
                MemoryMarshal.AsBytes(Values(outF * Rank, ++seed).AsSpan()).ToArray()));
            if (dora)
                entries.Add(SafetensorsWriter.Entry.Of($"base_model.model.model.layers.0.{path}.lora_magnitude_vector", SafetensorsDtype.F32, [outF],
                    MemoryMarshal.AsBytes(Magnitudes(outF, seed).AsSpan()).ToArray()));
        }

        SafetensorsWriter.Write(Path.Combine(dir, "adapter_model.safetensors"), entries);
        var config = new JsonObject
        {
            ["peft_type"] = "LORA", ["r"] = Rank, ["lora_alpha"] = 8,
            ["target_modules"] = new JsonArray([.. modules.Select(m => (JsonNode)m.Path[(m.Path.IndexOf('.') + 1)..]).Distinct()]),
        };
        if (dora)
            config["use_dora"] = true;
        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString());
        return dir;
    }

    private static float[] Magnitudes(int count, int seed) => [.. Enumerable.Range(0, count).Select(i => 1 + 0.5f * (float)Math.Cos(seed * 100 + i))];

    [Fact]
    public void Read_StackedModules_EachProjectionTheSharedAAndItsRowsOfB()
    {
        int q = _phi3.NumHeads * _phi3.HeadDim, kv = _phi3.NumKvHeads * _phi3.HeadDim, inter = _phi3.IntermediateSize;
        string dir = Adapter("stacked", _phi3, ("self_attn.qkv_proj", q + 2 * kv), ("self_attn.o_proj", _phi3.HiddenSize),
            ("mlp.gate_up_proj", 2 * inter), ("mlp.down_proj", _phi3.HiddenSize));

        var modules = PeftAdapterReader.Read(dir, "stacked", _phi3, 16).Modules;

        Assert.Equal(LoraTargets.All, modules.Select(m => m.Target));
        var (qkvA, qkvB) = (Values(Rank * _phi3.HiddenSize, 1), Values((q + 2 * kv) * Rank, 2));
        var (gateUpA, gateUpB) = (Values(Rank * _phi3.HiddenSize, 5), Values(2 * inter * Rank, 6));
        foreach (var (target, a, b, row) in new[]
        {
            (LoraTarget.Q, qkvA, qkvB, 0), (LoraTarget.K, qkvA, qkvB, q), (LoraTarget.V, qkvA, qkvB, q + kv),
            (LoraTarget.Gate, gateUpA, gateUpB, 0), (LoraTarget.Up, gateUpA, gateUpB, inter),
        })
        {
            var m = modules.Single(m => m.Target == target);
            int rows = LoraTargets.Shape(_phi3, target).Out;
            Assert.Equal(a, m.A);
            Assert.Equal(b.AsSpan(row * Rank, rows * Rank).ToArray(), m.B);
            Assert.Equal(2f, m.Scale);
        }
    }

    /// <summary>Phi-3 has no q_proj, and other models no qkv_proj: an adapter naming the other's module is refused, naming it.</summary>
    /// <summary>DoRA on a stacked module: each projection's magnitudes are its rows of the stacked vector, as its rows of B are.</summary>
    [Fact]
    public void Read_DoraOnStackedModules_EachProjectionItsRowsOfTheMagnitudes()
    {
        int q = _phi3.NumHeads * _phi3.HeadDim, kv = _phi3.NumKvHeads * _phi3.HeadDim, inter = _phi3.IntermediateSize;
        string dir = Adapter("dora", _phi3, dora: true, ("self_attn.qkv_proj", q + 2 * kv), ("self_attn.o_proj", _phi3.HiddenSize),
            ("mlp.gate_up_proj", 2 * inter), ("mlp.down_proj", _phi3.HiddenSize));

        var modules = PeftAdapterReader.Read(dir, "dora", _phi3, 16).Modules;

        var (qkv, oProj, gateUp, down) = (Magnitudes(q + 2 * kv, 2), Magnitudes(_phi3.HiddenSize, 4), Magnitudes(2 * inter, 6), Magnitudes(_phi3.HiddenSize, 8));
        foreach (var (target, stacked, row) in new[]
        {
            (LoraTarget.Q, qkv, 0), (LoraTarget.K, qkv, q), (LoraTarget.V, qkv, q + kv), (LoraTarget.O, oProj, 0),
            (LoraTarget.Gate, gateUp, 0), (LoraTarget.Up, gateUp, inter), (LoraTarget.Down, down, 0),
        })
        {
            int rows = LoraTargets.Shape(_phi3, target).Out;
            Assert.Equal(stacked.AsSpan(row, rows).ToArray(), modules.Single(m => m.Target == target).Magnitude);
        }
    }

    [Fact]
    public void Read_ModuleTheBaseModelDoesNotHave_RefusedNamingIt()
    {
        string separate = Adapter("separate", _phi3, ("self_attn.q_proj", _phi3.NumHeads * _phi3.HeadDim));
        Assert.Contains("self_attn.q_proj", Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(separate, "separate", _phi3, 16)).Message);

        string llamaDir = Path.Combine(_root, "llama");
        SyntheticModelWriter.Write(llamaDir, new SyntheticModelSpec { Seed = 5 });
        var llama = ModelConfig.Load(Path.Combine(llamaDir, "config.json"));
        string stacked = Adapter("stacked-on-llama", llama, ("self_attn.qkv_proj", (llama.NumHeads + 2 * llama.NumKvHeads) * llama.HeadDim));
        Assert.Contains("self_attn.qkv_proj", Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(stacked, "stacked-on-llama", llama, 16)).Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
