using System.Text.Json.Nodes;
using Serving.AdapterStore.Peft;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Tests.Peft;

/// <summary>
/// LoRA adapters of a multimodal Gemma 3 (4B+, Gemma3ForConditionalGeneration), as PEFT saves them: the language model's
/// layers under <c>language_model.model.</c> (or transformers 4.52+'s <c>model.language_model.</c>), often beside LoRA
/// weights of the vision tower and projector (target_modules "all-linear"), and target_modules regexes written against
/// those full names (Unsloth's select "language_model" modules).
/// </summary>
public sealed class PeftMultimodalAdapterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "serving-tests", "peft-multimodal-" + Guid.NewGuid().ToString("N"));
    private readonly string _model;
    private readonly ModelConfig _config;

    public PeftMultimodalAdapterTests()
    {
        _model = Path.Combine(_root, "gemma3-4b-like");
        SyntheticModelWriter.Write(_model, new SyntheticModelSpec { Architecture = "Gemma3ForCausalLM", Seed = 8, TieWordEmbeddings = true, MultimodalPrefix = "language_model.model." });
        _config = ModelConfig.Load(Path.Combine(_model, "config.json"));
    }

    private string Adapter(string name, string prefix, bool visionModules, string? targetRegex = null)
    {
        string dir = Path.Combine(_root, name);
        SyntheticAdapterWriter.Write(dir, _model, 4, 8, ["q_proj", "v_proj"], 3, layerPrefix: prefix, visionModules: visionModules);
        if (targetRegex is not null)
        {
            string configPath = Path.Combine(dir, "adapter_config.json");
            var o = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
            o["target_modules"] = targetRegex;
            File.WriteAllText(configPath, o.ToJsonString());
        }

        return dir;
    }

    [Theory]
    [InlineData("language_model.model.")]
    [InlineData("model.language_model.")]
    public void Read_LanguageModelLayersBesideVisionModules_TheLanguageModelsWeights(string prefix)
    {
        var plain = PeftAdapterReader.Read(Adapter("plain", "model.", visionModules: false), "plain", _config, 16);

        var multimodal = PeftAdapterReader.Read(Adapter("multimodal", prefix, visionModules: true, @".*language_model.*\.(q_proj|v_proj)"), "multimodal", _config, 16);

        Assert.Equal(plain.Modules.Count, multimodal.Modules.Count);
        foreach (var (a, b) in plain.Modules.Zip(multimodal.Modules))
        {
            Assert.Equal((a.Layer, a.Target, a.Rank, a.Scale), (b.Layer, b.Target, b.Rank, b.Scale));
            Assert.Equal(a.A, b.A);
            Assert.Equal(a.B, b.B);
        }
    }

    /// <summary>The target check reads the module's full name as the checkpoint has it: a regex for the vision tower selects no language-model layer.</summary>
    [Fact]
    public void Read_RegexSelectingOtherModules_RefusedNamingTheModule()
    {
        string dir = Adapter("vision-regex", "language_model.model.", visionModules: false, @".*vision_tower.*\.(q_proj|v_proj)");

        var error = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, "vision-regex", _config, 16));

        Assert.Contains("language_model.model.layers.0.self_attn.q_proj", error.Message);
    }

    [Fact]
    public void Read_VisionModulesOnATextOnlyModel_Refused()
    {
        string text = Path.Combine(_root, "text-model");
        SyntheticModelWriter.Write(text, new SyntheticModelSpec { Architecture = "Gemma3ForCausalLM", Seed = 8, TieWordEmbeddings = true });
        var textConfig = ModelConfig.Load(Path.Combine(text, "config.json"));

        var error = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(Adapter("vision", "model.", visionModules: true), "vision", textConfig, 16));

        Assert.Contains("vision_tower", error.Message);
    }

    [Fact]
    public void Read_LayersUnderTwoPrefixes_Refused()
    {
        string dir = Adapter("mixed", "language_model.model.", visionModules: false);
        string path = Path.Combine(dir, "adapter_model.safetensors");
        var file = SafetensorsFile.Open(path);
        var entries = file.Tensors.Values.OrderBy(t => t.DataOffset).Select(t =>
        {
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            string name = t.Name.Contains(".layers.1.", StringComparison.Ordinal) ? t.Name.Replace("language_model.model.", "model.language_model.") : t.Name;
            return SafetensorsWriter.Entry.Of(name, t.Dtype, t.Shape, bytes);
        }).ToList();
        SafetensorsWriter.Write(path, entries);

        var error = Assert.Throws<AdapterFormatException>(() => PeftAdapterReader.Read(dir, "mixed", _config, 16));

        Assert.Contains("other tensors under", error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
            Directory.Delete(_root, recursive: true);
    }
}
