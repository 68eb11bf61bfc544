using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;

namespace Serving.Contracts.Tests.Configuration;

public sealed class ModelConfigTests
{
    private static JsonObject Llama() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["hidden_size"] = 256, ["intermediate_size"] = 512, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 2, ["vocab_size"] = 1000,
        ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0, ["eos_token_id"] = new JsonArray(1, 2),
    };

    [Fact]
    public void Parse_Llama_DerivesHeadDimAndGroups()
    {
        var c = ModelConfig.Parse(Llama(), "config.json");
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(4, c.QueryGroupSize);
        Assert.False(c.AttentionBias);
        Assert.Equal(new[] { 1, 2 }, c.EosTokenIds);
        Assert.Equal(RopeScalingKind.None, c.RopeScaling.Kind);
    }

    [Fact]
    public void Parse_ExplicitHeadDim_Wins()
    {
        var o = Llama();
        o["head_dim"] = 64;
        Assert.Equal(64, ModelConfig.Parse(o, "config.json").HeadDim);
    }

    [Fact]
    public void Parse_Qwen2_HasAttentionBiasAndIgnoresDisabledSlidingWindow()
    {
        var o = Llama();
        o["architectures"] = new JsonArray("Qwen2ForCausalLM");
        o["sliding_window"] = 4096;
        o["use_sliding_window"] = false;
        var c = ModelConfig.Parse(o, "config.json");
        Assert.True(c.AttentionBias);
        Assert.Null(c.SlidingWindow);
    }

    [Fact]
    public void Parse_MistralSlidingWindow_IsReported()
    {
        var o = Llama();
        o["architectures"] = new JsonArray("MistralForCausalLM");
        o["sliding_window"] = 4096;
        Assert.Equal(4096, ModelConfig.Parse(o, "config.json").SlidingWindow);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("vocab_size")]
    public void Parse_MissingRequiredField_NamesIt(string field)
    {
        var o = Llama();
        o.Remove(field);
        Assert.Contains(field, Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json")).Message);
    }

    [Fact]
    public void Parse_UnsupportedRopeScaling_Throws()
    {
        var o = Llama();
        o["rope_scaling"] = new JsonObject { ["type"] = "yarn", ["factor"] = 4.0 };
        Assert.Contains("yarn", Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json")).Message);
    }

    [Fact]
    public void Parse_HeadsNotMultipleOfKvHeads_Throws()
    {
        var o = Llama();
        o["num_key_value_heads"] = 3;
        Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json"));
    }
}
