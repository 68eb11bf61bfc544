using System.Text.Json.Nodes;
using Serving.Authoring.Synthetic;
using Serving.Contracts.Safetensors;
using Serving.Tests.Shared;

namespace Serving.Authoring.Tests.Synthetic;

[Collection(TinyModelCollection.Name)]
public sealed class SyntheticAdapterWriterTests(TinyModelFixture fixture) : IDisposable
{
    private readonly string _dir = TestDirectories.Create("adapter");

    [Fact]
    public void Write_PeftLayout_StandardNamesShapesAndConfig()
    {
        SyntheticAdapterWriter.Write(_dir, fixture.Directory, rank: 4, alpha: 8, ["q_proj", "v_proj", "down_proj"], seed: 2);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir, "adapter_config.json")))!;
        Assert.Equal("LORA", (string?)config["peft_type"]);
        Assert.Equal(4, (int)config["r"]!);
        Assert.Equal(8.0, (double)config["lora_alpha"]!);
        Assert.False((bool)config["use_rslora"]!);
        var file = SafetensorsFile.Open(Path.Combine(_dir, "adapter_model.safetensors"));
        Assert.Equal(2 * 3 * 2, file.Tensors.Count);
        Assert.Equal(new long[] { 4, 64 }, file.Tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 32, 4 }, file.Tensors["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"].Shape);
        Assert.Equal(new long[] { 4, 176 }, file.Tensors["base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"].Shape);
        Assert.Equal(new long[] { 64, 4 }, file.Tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].Shape);
    }

    [Fact]
    public void Write_SameSeed_SameBytes()
    {
        string a = Path.Combine(_dir, "a"), b = Path.Combine(_dir, "b");
        SyntheticAdapterWriter.Write(a, fixture.Directory, 8, 16, SyntheticAdapterWriter.AllTargets, seed: 9);
        SyntheticAdapterWriter.Write(b, fixture.Directory, 8, 16, SyntheticAdapterWriter.AllTargets, seed: 9);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(b, "adapter_model.safetensors")));
    }

    [Fact]
    public void Write_UnknownTarget_Throws() =>
        Assert.Throws<ArgumentException>(() => SyntheticAdapterWriter.Write(_dir, fixture.Directory, 4, 8, ["lm_head"], 1));

    public void Dispose() => TestDirectories.Delete(_dir);
}
