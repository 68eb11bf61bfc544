using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;

namespace Serving.Engine.Tests.Model;

public sealed class RotaryEmbeddingTests
{
    private static JsonObject Llama() => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["hidden_size"] = 256, ["intermediate_size"] = 512, ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 8, ["num_key_value_heads"] = 2, ["vocab_size"] = 1000,
        ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 500000.0, ["eos_token_id"] = new JsonArray(1, 2),
    };

    [Fact]
    public void InverseFrequencies_LinearScaling_LeavesFrequenciesAndScalesPositions()
    {
        var o = Llama();
        o["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 };
        var c = ModelConfig.Parse(o, "config.json");
        Assert.Equal(new RopeScaling(RopeScalingKind.Linear, 4.0), c.RopeScaling);
        Assert.Equal(RotaryEmbedding.InverseFrequencies(c with { RopeScaling = RopeScaling.None }), RotaryEmbedding.InverseFrequencies(c));
    }

    [Fact]
    public void InverseFrequencies_Llama3Scaling_DividesLowFrequenciesKeepsHighOnes()
    {
        var o = Llama();
        o["head_dim"] = 128;
        o["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        };
        var c = ModelConfig.Parse(o, "config.json");
        var plain = RotaryEmbedding.InverseFrequencies(c with { RopeScaling = RopeScaling.None });
        var scaled = RotaryEmbedding.InverseFrequencies(c);
        for (int i = 0; i < plain.Length; i++)
        {
            double wavelength = 2 * Math.PI / plain[i];
            if (wavelength < 8192 / 4.0)
                Assert.Equal(plain[i], scaled[i]);
            else if (wavelength > 8192 / 1.0)
                Assert.Equal(plain[i] / 8.0, scaled[i], 12);
            else
                Assert.InRange(scaled[i], plain[i] / 8.0, plain[i]);
        }

        Assert.Contains(plain.Select((p, i) => p / scaled[i]), r => r > 7.99);
    }
}
