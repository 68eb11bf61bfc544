using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;

namespace Serving.Contracts.Tests.Configuration;

public sealed class GptOssConfigTests
{
    /// <summary>gpt-oss-20b's config.json as OpenAI publishes it (its layer_types alternate, starting sliding).</summary>
    private static JsonObject Gpt20b()
    {
        var o = JsonNode.Parse("""
            {
              "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0, "eos_token_id": 200002,
              "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
              "initializer_range": 0.02, "intermediate_size": 2880, "max_position_embeddings": 131072, "model_type": "gpt_oss",
              "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 8,
              "num_local_experts": 32, "output_router_logits": false, "pad_token_id": 199999,
              "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
              "rms_norm_eps": 1e-05,
              "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
              "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": false,
              "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 201088
            }
            """)!.AsObject();
        o["layer_types"] = new JsonArray([.. Enumerable.Range(0, 24).Select(i => (JsonNode)(i % 2 == 0 ? "sliding_attention" : "full_attention"))]);
        return o;
    }

    [Fact]
    public void Parse_Gpt20b_EveryPartItsModellingCodeBuilds()
    {
        var c = ModelConfig.Parse(Gpt20b(), "config.json");

        Assert.Equal((2880, 64, 8, 64, 24, 201088), (c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.NumLayers, c.VocabSize));
        Assert.True(c.AttentionBias && c.AttentionOutputBias && c.AttentionSinks);
        Assert.Equal((MlpActivation.ClampedSwiglu, 7.0), (c.Activation, c.SwigluLimit));
        Assert.Equal(128, c.SlidingWindow);
        Assert.Equal(Enumerable.Range(0, 12).Select(i => 2 * i + 1), c.FullAttentionLayers);
        Assert.Equal((RopeScalingKind.Yarn, 32.0, 4096, false), (c.RopeScaling.Kind, c.RopeScaling.Factor, c.RopeScaling.OriginalMaxPositionEmbeddings, c.RopeScaling.Truncate));
        var moe = c.Experts!;
        Assert.Equal((32, 4, 2880), (moe.Experts, moe.TopK, moe.IntermediateSize));
        Assert.True(moe.RouterBias && moe.ExpertBias && moe.SoftmaxOverTopK);
        Assert.All(Enumerable.Range(0, 24), l => Assert.True(moe.IsSparse(l)));
        Assert.Equal([200002], c.EosTokenIds);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-7.0)]
    public void Parse_NonPositiveSwigluLimit_RefusedNamingIt(double limit)
    {
        var o = Gpt20b();
        o["swiglu_limit"] = limit;

        var error = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(o, "config.json"));

        Assert.Contains("swiglu_limit", error.Message);
    }

    /// <summary>Llama's attention_bias puts a bias on o_proj too (its modelling code's); Qwen2's q/k/v biases never reach o_proj.</summary>
    [Theory]
    [InlineData("LlamaForCausalLM", true, true)]
    [InlineData("Qwen2ForCausalLM", true, false)]
    [InlineData("Qwen2ForCausalLM", false, false)]
    public void Parse_AttentionBias_OutputBiasOutsideQwen2(string architecture, bool attentionBias, bool outputBias)
    {
        var o = Gpt20b();
        o["architectures"] = new JsonArray(architecture);
        o["attention_bias"] = attentionBias;
        o.Remove("layer_types");
        o["use_sliding_window"] = false;

        var c = ModelConfig.Parse(o, "config.json");

        Assert.Equal(outputBias, c.AttentionOutputBias);
        Assert.False(c.AttentionSinks);
        Assert.Null(c.SwigluLimit);
    }
}
