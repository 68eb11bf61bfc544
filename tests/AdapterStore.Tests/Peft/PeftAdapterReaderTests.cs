using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;
using Serving.Engine.Lora;

namespace Serving.AdapterStore.Tests.Peft;

public sealed class PeftAdapterReaderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;
    private readonly ModelConfig _config;

    public PeftAdapterReaderTests()
    {
        _model = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 4 });
        _config = ModelConfig.Load(Path.Combine(_model, "config.json"));
    }

    private string Adapter(string name, int rank = 4, double alpha = 8, string[]? targets = null, bool rslora = false)
    {
        string dir = Path.Combine(_root, name);
        SyntheticAdapterWriter.Write(dir, _model, rank, alpha, targets ?? ["q_proj", "v_proj"], 3, rslora);
        return dir;
    }

    private static void EditConfig(string dir, Action<JsonObject> edit)
    {
        string path = Path.Combine(dir, "adapter_config.json");
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    private static void RewriteTensors(string dir, Func<SafetensorsTensorInfo, byte[], (string Name, long[] Shape, byte[] Data)?> map) =>
        RewriteEntries(dir, (t, bytes) => map(t, bytes) is { } m ? SafetensorsWriter.Entry.Of(m.Name, t.Dtype, m.Shape, m.Data) : null);

    private static void RewriteEntries(string dir, Func<SafetensorsTensorInfo, byte[], SafetensorsWriter.Entry?> map)
    {
        string path = Path.Combine(dir, "adapter_model.safetensors");
        var file = SafetensorsFile.Open(path);
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var t in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            if (map(t, bytes) is { } entry)
                entries.Add(entry);
        }

        SafetensorsWriter.Write(path, entries);
    }

    private AdapterFormatException Rejected(string dir, int maxRank = 64) =>
        Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, Path.GetFileName(dir), _config, maxRank));

    [Fact]
    public void Read_GeneratedAdapter_ModulesRankAndScale()
    {
        var w = PeftAdapterReader.Read(Adapter("plain", rank: 4, alpha: 8), "plain", _config, 16);
        Assert.Equal(2 * 2, w.Modules.Count);
        Assert.All(w.Modules, m => Assert.Equal(2f, m.Scale));
        var q = w.Modules.Single(m => m.Layer == 1 && m.Target == LoraTarget.Q);
        Assert.Equal(4 * 64, q.A.Length);
        Assert.Equal(64 * 4, q.B.Length);
    }

    [Fact]
    public void Read_RsLora_ScaleIsAlphaOverSqrtRank()
    {
        var w = PeftAdapterReader.Read(Adapter("rs", rank: 16, alpha: 8, rslora: true), "rs", _config, 16);
        Assert.All(w.Modules, m => Assert.Equal(2f, m.Scale, 5));
    }

    [Fact]
    public void Read_DefaultAdapterNameAndNoPrefix_SameWeights()
    {
        string dir = Adapter("forms");
        var before = PeftAdapterReader.Read(dir, "forms", _config, 16);
        RewriteTensors(dir, (t, b) => (t.Name.Replace("base_model.model.", "").Replace(".weight", ".default.weight"), t.Shape, b));
        var after = PeftAdapterReader.Read(dir, "forms", _config, 16);
        Assert.Equal(before.Modules.Select(m => m.A), after.Modules.Select(m => m.A));
    }

    [Fact]
    public void Read_FanInFanOut_TransposesBack()
    {
        string dir = Adapter("fifo");
        var normal = PeftAdapterReader.Read(dir, "fifo", _config, 16);
        RewriteTensors(dir, (t, b) =>
        {
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            var src = new float[rows * cols];
            Buffer.BlockCopy(b, 0, src, 0, b.Length);
            var dst = new float[src.Length];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    dst[c * rows + r] = src[r * cols + c];
            var bytes = new byte[b.Length];
            Buffer.BlockCopy(dst, 0, bytes, 0, bytes.Length);
            return (t.Name, [cols, rows], bytes);
        });
        EditConfig(dir, o => o["fan_in_fan_out"] = true);
        var transposed = PeftAdapterReader.Read(dir, "fifo", _config, 16);
        Assert.Equal(normal.Modules.Select(m => m.A), transposed.Modules.Select(m => m.A));
        Assert.Equal(normal.Modules.Select(m => m.B), transposed.Modules.Select(m => m.B));
    }

    [Fact]
    public void Read_RankAndAlphaPattern_PerModule()
    {
        string dir = Adapter("pattern", rank: 4, alpha: 8);
        // v_proj tensors were written at rank 4; declare the default rank 8 and pin v_proj (and q_proj) to 4 by pattern.
        EditConfig(dir, o =>
        {
            o["r"] = 8;
            o["rank_pattern"] = new JsonObject { ["q_proj"] = 4, ["v_proj"] = 4 };
            o["alpha_pattern"] = new JsonObject { ["model.layers.1.self_attn.v_proj"] = 2 };
        });
        var w = PeftAdapterReader.Read(dir, "pattern", _config, 16);
        Assert.Equal(0.5f, w.Modules.Single(m => m.Layer == 1 && m.Target == LoraTarget.V).Scale);
        Assert.Equal(2f, w.Modules.Single(m => m.Layer == 0 && m.Target == LoraTarget.V).Scale);
    }

    [Fact]
    public void Read_RegexTargetModules_Honoured()
    {
        string dir = Adapter("regex");
        EditConfig(dir, o => o["target_modules"] = @".*\.(q_proj|v_proj)");
        Assert.Equal(4, PeftAdapterReader.Read(dir, "regex", _config, 16).Modules.Count);
        EditConfig(dir, o => o["target_modules"] = @".*\.q_proj");
        Assert.Contains("v_proj", Rejected(dir).Message);
    }

    [Fact]
    public void Read_LayersToTransform_ExcludedLayerWithWeights_Rejected()
    {
        string dir = Adapter("layers");
        EditConfig(dir, o => o["layers_to_transform"] = new JsonArray(0));
        Assert.Contains("layers_to_transform", Rejected(dir).Message);
    }

    [Theory]
    [InlineData("bias", "\"all\"", "bias")]
    [InlineData("modules_to_save", "[\"lm_head\"]", "modules_to_save")]
    [InlineData("peft_type", "\"IA3\"", "peft_type")]
    [InlineData("layers_pattern", "\"h\"", "layers_pattern")]
    [InlineData("r", "\"four\"", "'r'")]
    public void Read_UnsupportedConfig_NamesField(string field, string json, string expected)
    {
        string dir = Adapter("bad-" + field);
        EditConfig(dir, o => o[field] = JsonNode.Parse(json));
        var ex = Rejected(dir);
        Assert.Contains(expected, ex.Message);
        Assert.Contains("adapter_config.json", ex.Message);
    }

    [Fact]
    public void Read_MissingTargetModules_Rejected()
    {
        string dir = Adapter("no-targets");
        EditConfig(dir, o => o.Remove("target_modules"));
        Assert.Contains("target_modules", Rejected(dir).Message);
    }

    [Fact]
    public void Read_FileAboveMaxBytes_Rejected()
    {
        string dir = Adapter("huge");
        var ex = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, "huge", _config, 16, maxBytes: 1000));
        Assert.Contains("above the configured limit of 1000", ex.Message);
    }

    [Fact]
    public void Read_RankAboveMax_Rejected() => Assert.Contains("max rank 8", Rejected(Adapter("big", rank: 16), maxRank: 8).Message);

    [Fact]
    public void Read_ShapeMismatch_NamesTensor()
    {
        string dir = Adapter("shape");
        EditConfig(dir, o => o["r"] = 8);
        var ex = Rejected(dir);
        Assert.Contains("lora_A", ex.Message);
        Assert.Contains("shape", ex.Message);
    }

    [Fact]
    public void Read_NaN_NamesTensor()
    {
        string dir = Adapter("nan");
        RewriteTensors(dir, (t, b) =>
        {
            if (t.Name.EndsWith("layers.0.self_attn.q_proj.lora_B.weight", StringComparison.Ordinal))
                BitConverter.TryWriteBytes(b.AsSpan(8), float.NaN);
            return (t.Name, t.Shape, b);
        });
        var ex = Rejected(dir);
        Assert.Contains("layers.0.self_attn.q_proj.lora_B", ex.Message);
        Assert.Contains("non-finite", ex.Message);
    }

    [Theory]
    [InlineData(0, float.NaN)]
    [InlineData(37, float.PositiveInfinity)]
    [InlineData(-1, float.NegativeInfinity)]   // the last element
    public void Read_NonFiniteAnywhereInATensor_RejectedNamingTheElement(int element, float value)
    {
        string dir = Adapter($"nonfinite{element}");
        int written = -1;
        RewriteTensors(dir, (t, b) =>
        {
            if (t.Name.EndsWith("layers.1.self_attn.v_proj.lora_A.weight", StringComparison.Ordinal))
            {
                written = element >= 0 ? element : b.Length / 4 - 1;
                BitConverter.TryWriteBytes(b.AsSpan(written * 4), value);
            }

            return (t.Name, t.Shape, b);
        });
        var ex = Rejected(dir);
        Assert.Contains("layers.1.self_attn.v_proj.lora_A", ex.Message);
        Assert.Contains($"at element {written}", ex.Message);
    }

    [Fact]
    public void Read_NonFiniteInSeveralModules_TheFirstModuleInLayerOrderIsNamed()
    {
        // Modules are read in parallel; the error must still be the one a read in layer and projection order meets first.
        string dir = Adapter("nonfinite-several", targets: ["q_proj", "v_proj", "down_proj"]);
        RewriteTensors(dir, (t, b) =>
        {
            if (t.Name.Contains("layers.1.", StringComparison.Ordinal) || t.Name.EndsWith("layers.0.mlp.down_proj.lora_B.weight", StringComparison.Ordinal))
                BitConverter.TryWriteBytes(b.AsSpan(0), float.NaN);
            return (t.Name, t.Shape, b);
        });

        for (int attempt = 0; attempt < 5; attempt++)
            Assert.Contains("layers.0.mlp.down_proj.lora_B", Rejected(dir).Message);
    }

    [Theory]
    [InlineData("BF16")]
    [InlineData("F16")]
    public void Read_HalfPrecisionTensors_EqualTheFloat32ValuesWidenedExactly(string dtypeName)
    {
        var dtype = Enum.Parse<SafetensorsDtype>(dtypeName);
        string dir = Adapter($"half-{dtypeName}");
        var original = PeftAdapterReader.Read(dir, "half", _config, 64);
        RewriteEntries(dir, (t, bytes) =>
        {
            var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes);
            var narrow = new byte[floats.Length * 2];
            for (int i = 0; i < floats.Length; i++)
            {
                ushort bits = dtype == SafetensorsDtype.F16
                    ? BitConverter.HalfToUInt16Bits((Half)floats[i])
                    : (ushort)(BitConverter.SingleToUInt32Bits(floats[i]) >> 16);
                BitConverter.TryWriteBytes(narrow.AsSpan(i * 2), bits);
            }

            return SafetensorsWriter.Entry.Of(t.Name, dtype, t.Shape, narrow);
        });

        var read = PeftAdapterReader.Read(dir, "half", _config, 64);
        float Widen(float v) => dtype == SafetensorsDtype.F16
            ? (float)(Half)v
            : BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u);
        Assert.Equal(original.Modules.Count, read.Modules.Count);
        foreach (var (a, b) in original.Modules.Zip(read.Modules))
        {
            Assert.Equal(a.A.Select(Widen), b.A);
            Assert.Equal(a.B.Select(Widen), b.B);
        }
    }

    [Fact]
    public void Read_UnknownModuleAndExtraLayer_Rejected()
    {
        string dir = Adapter("unknown");
        RewriteTensors(dir, (t, b) => (t.Name.Replace("layers.1.", "layers.7."), t.Shape, b));
        Assert.Contains("layer 7", Rejected(dir).Message);
        string dir2 = Adapter("lmhead");
        RewriteTensors(dir2, (t, b) => (t.Name.Replace("model.layers.0.self_attn.q_proj", "lm_head"), t.Shape, b));
        Assert.Contains("lm_head", Rejected(dir2).Message);
    }

    [Fact]
    public void Read_MissingBHalf_Rejected()
    {
        string dir = Adapter("half");
        RewriteTensors(dir, (t, b) => t.Name.EndsWith("layers.0.self_attn.v_proj.lora_B.weight", StringComparison.Ordinal) ? null : (t.Name, t.Shape, b));
        Assert.Contains("lora_B", Rejected(dir).Message);
    }

    [Fact]
    public void Read_TruncatedWeights_Rejected()
    {
        string dir = Adapter("trunc");
        string path = Path.Combine(dir, "adapter_model.safetensors");
        using (var f = new FileStream(path, FileMode.Open))
            f.SetLength(f.Length - 16);
        Assert.Contains("adapter_model.safetensors", Rejected(dir).Message);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
