using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>
/// Adapters of a mixture-of-experts model (Mixtral) adapt its attention and its experts (PeftExpertAdapterTests); an adapter
/// of the rest of its MLP — the router, or a dense MLP's names — is refused naming the tensor, not served as something else.
/// </summary>
public sealed class PeftMixtureOfExpertsAdapterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-moe-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;
    private readonly ModelConfig _config;

    public PeftMixtureOfExpertsAdapterTests()
    {
        _model = Path.Combine(_root, "mixtral");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "MixtralForCausalLM", Seed = 6 });
        _config = ModelConfig.Load(Path.Combine(_model, "config.json"));
    }

    [Fact]
    public void Read_AttentionAdapter_Reads()
    {
        string dir = Path.Combine(_root, "attention");
        SyntheticAdapterWriter.Write(dir, _model, 4, 8, ["q_proj", "k_proj", "v_proj", "o_proj"], 3);

        Assert.Equal(4 * _config.NumLayers, PeftAdapterReader.Read(dir, "attention", _config, 16).Modules.Count);
    }

    /// <summary>An MLP's or the router's LoRA is named as such, an expert's A without its B as incomplete; anything else (an lm_head LoRA) as not a decoder-layer projection's.</summary>
    [Theory]
    [InlineData("base_model.model.model.layers.0.mlp.gate_proj", "mixture-of-experts")]
    [InlineData("base_model.model.model.layers.0.block_sparse_moe.experts.1.w1", "no matching lora_B")]
    [InlineData("base_model.model.model.layers.0.block_sparse_moe.gate", "mixture-of-experts")]
    [InlineData("base_model.model.lm_head", "is not a LoRA A/B weight")]
    public void Read_ModuleOutsideTheAttention_RefusedNamingTheTensorAndWhy(string module, string why)
    {
        string dir = Path.Combine(_root, "mlp");
        SyntheticAdapterWriter.Write(dir, _model, 4, 8, ["q_proj"], 3);
        string path = Path.Combine(dir, "adapter_model.safetensors");
        var entries = SafetensorsEntries.Read(path);
        entries.Add(SafetensorsWriter.Entry.Of(module + ".lora_A.weight", SafetensorsDtype.F32, [4, _config.HiddenSize], new byte[4 * _config.HiddenSize * 4]));
        SafetensorsWriter.Write(path, entries);

        var error = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, "mlp", _config, 16));

        Assert.Contains(module, error.Message);
        Assert.Contains(why, error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
