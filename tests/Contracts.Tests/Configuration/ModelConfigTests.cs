using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Tests.Shared;

namespace Serving.Contracts.Tests.Configuration;

public sealed class ModelConfigTests
{
    [Fact]
    public void Parse_Llama_DerivesHeadDimAndGroups()
    {
        var c = ModelConfig.Parse(LlamaConfigJson.Create(), "config.json");
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(4, c.QueryGroupSize);
        Assert.False(c.AttentionBias);
        Assert.Equal(new[] { 1, 2 }, c.EosTokenIds);
        Assert.Equal(RopeScalingKind.None, c.RopeScaling.Kind);
    }

    [Fact]
    public void Parse_ExplicitHeadDim_Wins()
    {
        var o = LlamaConfigJson.Create();
        o["head_dim"] = 64;
        Assert.Equal(64, ModelConfig.Parse(o, "config.json").HeadDim);
    }

    [Fact]
    public void Parse_Qwen2_HasAttentionBiasAndIgnoresDisabledSlidingWindow()
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray("Qwen2ForCausalLM");
        o["sliding_window"] = 4096;
        o["use_sliding_window"] = false;
        var c = ModelConfig.Parse(o, "config.json");
        Assert.True(c.AttentionBias);
        Assert.Null(c.SlidingWindow);
    }

    [Fact]
    public void Parse_Qwen3_HeadNormsNoBiasesNoSlidingWindowAndItsOwnHeadDim()
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray("Qwen3ForCausalLM");
        o["head_dim"] = 128;                                  // Qwen3-0.6B: 16 heads of 128 over a hidden size of 1,024
        o["attention_bias"] = false;
        o["sliding_window"] = null;
        o["use_sliding_window"] = false;
        var c = ModelConfig.Parse(o, "config.json");
        Assert.True(c.QkNorm);
        Assert.False(c.AttentionBias);
        Assert.Null(c.SlidingWindow);
        Assert.Equal(128, c.HeadDim);
        Assert.False(ModelConfig.Parse(LlamaConfigJson.Create(), "config.json").QkNorm);
    }

    [Theory]
    [InlineData("Qwen2ForCausalLM", """{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 0}""", 4096)]
    [InlineData("Qwen2ForCausalLM", """{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 28}""", null)]
    [InlineData("Qwen3ForCausalLM", """{"use_sliding_window": false, "sliding_window": 4096, "max_window_layers": 0}""", null)]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "layer_types": ["full_attention", "full_attention"]}""", null)]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "layer_types": ["sliding_attention", "sliding_attention"]}""", 4096)]
    public void Parse_SlidingWindowInEveryLayerOrNone_OneWindowOrNull(string architecture, string fields, int? window)
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray(architecture);
        foreach (var (key, value) in JsonNode.Parse(fields)!.AsObject())
            o[key] = value?.DeepClone();

        Assert.Equal(window, ModelConfig.Parse(o, "config.json").SlidingWindow);
    }

    /// <summary>Qwen2 below max_window_layers, a layer_types list, Gemma 3's pattern (its every sixth layer whole-context; here of two).</summary>
    [Theory]
    [InlineData("Qwen2ForCausalLM", """{"use_sliding_window": true, "sliding_window": 4096, "max_window_layers": 1}""", new[] { 0 })]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "layer_types": ["sliding_attention", "full_attention"]}""", new[] { 1 })]
    [InlineData("Gemma3ForCausalLM", """{"sliding_window": 4096, "sliding_window_pattern": 2}""", new[] { 1 })]
    [InlineData("Gemma3ForCausalLM", """{"sliding_window": 4096, "sliding_window_pattern": 6}""", new int[0])]
    public void Parse_SlidingInSomeLayersOnly_ThoseLayersSlide(string architecture, string fields, int[] fullLayers)
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray(architecture);
        foreach (var (key, value) in JsonNode.Parse(fields)!.AsObject())
            o[key] = value?.DeepClone();

        var c = ModelConfig.Parse(o, "config.json");

        Assert.Equal(4096, c.SlidingWindow);
        Assert.Equal(fullLayers, c.FullAttentionLayers);
        Assert.Equal(fullLayers.Length > 0, c.MixesWindows);
        for (int layer = 0; layer < 2; layer++)
            Assert.Equal(fullLayers.Contains(layer) ? null : 4096, c.WindowOf(layer));
    }

    [Theory]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "layer_types": ["sliding_attention"]}""", "layer_types")]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "layer_types": ["chunked_attention", "full_attention"]}""", "chunked_attention")]
    [InlineData("Gemma2ForCausalLM", """{"final_logit_softcapping": -30.0}""", "final_logit_softcapping")]
    [InlineData("MistralForCausalLM", """{"sliding_window": 4096, "use_bidirectional_attention": true}""", "use_bidirectional_attention")]
    [InlineData("LlamaForCausalLM", """{"hidden_act": "relu"}""", "relu")]
    [InlineData("Phi3ForCausalLM", """{"partial_rotary_factor": 0.0}""", "partial_rotary_factor")]
    [InlineData("Phi3ForCausalLM", """{"partial_rotary_factor": 1.5}""", "partial_rotary_factor")]
    [InlineData("Mistral3ForConditionalGeneration", """{"text_config": {"model_type": "qwen2"}}""", "qwen2")]
    [InlineData("LlavaForConditionalGeneration", """{"vision_config": {}}""", "text_config")]
    [InlineData("Phi3ForCausalLM", """{"original_max_position_embeddings": 4096, "rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}""", "short_factor")]
    [InlineData("Phi3ForCausalLM", """{"rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}}""", "original_max_position_embeddings")]
    public void Parse_SettingTheEngineDoesNotImplement_RefusedNamingIt(string architecture, string fields, string setting)
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray(architecture);
        foreach (var (key, value) in JsonNode.Parse(fields)!.AsObject())
            o[key] = value?.DeepClone();

        Assert.Contains(setting, Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json")).Message);
    }

    /// <summary>Gemma 2 9B's config.json fields (at this test's sizes): its soft caps, scales and alternating windows.</summary>
    [Fact]
    public void Parse_Gemma2_SoftCapsAndEveryOtherLayerSliding()
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray("Gemma2ForCausalLM");
        o["hidden_activation"] = "gelu_pytorch_tanh";
        o["query_pre_attn_scalar"] = 256;
        o["head_dim"] = 256;
        o["sliding_window"] = 4096;
        o["attn_logit_softcapping"] = 50.0;
        o["final_logit_softcapping"] = 30.0;

        var c = ModelConfig.Parse(o, "config.json");

        Assert.Equal((50.0, 30.0), (c.AttentionSoftcap, c.FinalLogitSoftcap));
        Assert.Equal([1], c.FullAttentionLayers);
        Assert.True(c.NormScalesByOnePlusWeight && c.SandwichNorms);
        Assert.False(c.QkNorm);
        Assert.Null(c.LocalRopeTheta);
        Assert.Equal(1.0 / 16, c.AttentionMultiplier);
    }

    /// <summary>Gemma 3 1B's config.json fields (at this test's sizes): what each Gemma part reads from it.</summary>
    [Fact]
    public void Parse_Gemma3_GemmaPartsFromItsFields()
    {
        var o = LlamaConfigJson.Create();
        o["architectures"] = new JsonArray("Gemma3ForCausalLM");
        o["hidden_activation"] = "gelu_pytorch_tanh";
        o["head_dim"] = 256;
        o["query_pre_attn_scalar"] = 256;
        o["sliding_window"] = 512;
        o["rope_theta"] = 1000000.0;
        o["rope_local_base_freq"] = 10000.0;
        o["final_logit_softcapping"] = null;

        var c = ModelConfig.Parse(o, "config.json");

        Assert.Equal(MlpActivation.GeluTanh, c.Activation);
        Assert.True(c.NormScalesByOnePlusWeight && c.SandwichNorms && c.QkNorm);
        Assert.Equal(Math.Sqrt(256), c.EmbeddingMultiplier);
        Assert.Equal(1.0 / 16, c.AttentionMultiplier);
        Assert.Equal(10000.0, c.LocalRopeTheta);
        Assert.Equal(512, c.SlidingWindow);
        Assert.Empty(c.FullAttentionLayers);      // two layers: the sixth is beyond them
    }

    [Fact]
    public void Parse_MistralSlidingWindow_IsReported()
    {
        var o = LlamaConfigJson.Create();
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
        var o = LlamaConfigJson.Create();
        o.Remove(field);
        Assert.Contains(field, Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json")).Message);
    }

    [Fact]
    public void Parse_UnsupportedRopeScaling_Throws()
    {
        var o = LlamaConfigJson.Create();
        o["rope_scaling"] = new JsonObject { ["type"] = "dynamic", ["factor"] = 4.0 };
        Assert.Contains("dynamic", Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json")).Message);
    }

    [Theory]
    [InlineData("""{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}""", 4.0, 32768, 1.1386294361119891)]
    [InlineData("""{"type": "yarn", "factor": 2.0}""", 2.0, 4096, 1.0693147180559945)]
    [InlineData("""{"rope_type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096}""", 40.0, 4096, 1.0)]
    [InlineData("""{"rope_type": "yarn", "factor": 8, "attention_factor": 1.25, "beta_fast": 16}""", 8.0, 4096, 1.25)]
    public void Parse_YarnRopeScaling_FactorOriginalContextAndAttentionFactor(string scaling, double factor, int original, double attention)
    {
        var o = LlamaConfigJson.Create();
        o["max_position_embeddings"] = 4096;
        o["rope_scaling"] = JsonNode.Parse(scaling);
        var s = ModelConfig.Parse(o, "config.json").RopeScaling;
        Assert.Equal(RopeScalingKind.Yarn, s.Kind);
        Assert.Equal(factor, s.Factor);
        Assert.Equal(original, s.OriginalMaxPositionEmbeddings);
        Assert.Equal(attention, s.AttentionFactor, 12);
    }

    [Fact]
    public void Parse_HeadsNotMultipleOfKvHeads_Throws()
    {
        var o = LlamaConfigJson.Create();
        o["num_key_value_heads"] = 3;
        Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json"));
    }
}
