using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>PEFT DoRA folders: <c>use_dora</c> and <c>lora_magnitude_vector</c> tensors under both names PEFT writes.</summary>
public sealed class PeftDoraReaderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-dora-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;
    private readonly ModelConfig _config;

    public PeftDoraReaderTests()
    {
        _model = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Seed = 4 });
        _config = ModelConfig.Load(Path.Combine(_model, "config.json"));
    }

    /// <summary>A LoRA folder turned DoRA: use_dora set and one magnitude tensor per module, named with <paramref name="suffix"/>.</summary>
    private string DoraAdapter(string name, string suffix, Func<int, float[]>? magnitude = null, bool useDora = true, Func<string, bool>? skip = null)
    {
        string dir = Path.Combine(_root, name);
        SyntheticAdapterWriter.Write(dir, _model, 4, 8, ["q_proj", "down_proj"], 3);
        string config = Path.Combine(dir, "adapter_config.json");
        var o = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        o["use_dora"] = useDora;
        File.WriteAllText(config, o.ToJsonString());
        string weights = Path.Combine(dir, "adapter_model.safetensors");
        var file = SafetensorsFile.Open(weights);
        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var t in file.Tensors.Values.OrderBy(t => t.DataOffset))
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            entries.Add(SafetensorsWriter.Entry.Of(t.Name, t.Dtype, t.Shape, bytes));
            if (!t.Name.Contains(".lora_B.", StringComparison.Ordinal))
                continue;
            string module = t.Name[..t.Name.IndexOf(".lora_B.", StringComparison.Ordinal)];
            if (skip?.Invoke(module) == true)
                continue;
            int outF = (int)t.Shape[0];
            var values = magnitude?.Invoke(outF) ?? Enumerable.Range(0, outF).Select(i => 0.5f + i % 7 * 0.1f).ToArray();
            var data = new byte[values.Length * 4];
            Buffer.BlockCopy(values, 0, data, 0, data.Length);
            entries.Add(SafetensorsWriter.Entry.Of(module + ".lora_magnitude_vector" + suffix, SafetensorsDtype.F32, [values.Length], data));
        }

        SafetensorsWriter.Write(weights, entries);
        return dir;
    }

    private AdapterFormatException Rejected(string dir) =>
        Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, Path.GetFileName(dir), _config, 64));

    [Theory]
    [InlineData("")]
    [InlineData(".weight")]
    public void Read_DoraMagnitudesUnderEitherName_EveryModuleCarriesIts(string suffix)
    {
        string dir = DoraAdapter("dora" + suffix.Replace(".", "-"), suffix);
        var adapter = PeftAdapterReader.Read(dir, "dora", _config, 64);
        Assert.True(adapter.IsDora);
        Assert.All(adapter.Modules, m =>
        {
            Assert.Equal(LoraTargets.Shape(_config, m.Target).Out, m.Magnitude!.Length);
            Assert.Equal(0.5f + 6 % 7 * 0.1f, m.Magnitude[6], 5);
        });
    }

    [Fact]
    public void Read_UseDoraWithAModuleMissingItsMagnitude_RejectedNamingTheModule()
    {
        string dir = DoraAdapter("missing", "", skip: module => module.EndsWith("layers.1.mlp.down_proj", StringComparison.Ordinal));
        var ex = Rejected(dir);
        Assert.Contains("layers.1.mlp.down_proj", ex.Message);
        Assert.Contains("lora_magnitude_vector", ex.Message);
    }

    [Fact]
    public void Read_MagnitudeWithoutUseDora_Rejected() =>
        Assert.Contains("does not set use_dora", Rejected(DoraAdapter("no-flag", "", useDora: false)).Message);

    [Fact]
    public void Read_MagnitudeOfTheWrongLength_RejectedWithTheExpectedShape() =>
        Assert.Contains("need [", Rejected(DoraAdapter("short", "", magnitude: n => new float[n - 1])).Message);

    [Fact]
    public void Read_NonFiniteMagnitude_Rejected() =>
        Assert.Contains("non-finite", Rejected(DoraAdapter("nan", "", magnitude: n => [.. Enumerable.Repeat(float.NaN, n)])).Message);

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
