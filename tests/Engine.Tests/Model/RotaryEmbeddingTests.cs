using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Model;

public sealed class RotaryEmbeddingTests
{
    [Fact]
    public void InverseFrequencies_LinearScaling_LeavesFrequenciesAndScalesPositions()
    {
        var o = LlamaConfigJson.Create();
        o["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 };
        var c = ModelConfig.Parse(o, "config.json");
        Assert.Equal(new RopeScaling(RopeScalingKind.Linear, 4.0), c.RopeScaling);
        Assert.Equal(RotaryEmbedding.InverseFrequencies(c with { RopeScaling = RopeScaling.None }), RotaryEmbedding.InverseFrequencies(c));
    }

    [Fact]
    public void InverseFrequencies_Llama3Scaling_DividesLowFrequenciesKeepsHighOnes()
    {
        var o = LlamaConfigJson.Create();
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
