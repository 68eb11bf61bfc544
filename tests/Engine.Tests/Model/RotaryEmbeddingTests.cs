using System.Text.Json.Nodes;
using Serving.Contracts.Configuration;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

public sealed class RotaryEmbeddingTests
{
    /// <summary>HF's rotate-half on q and k, v kept; with a partial rotary factor (Phi-4-mini's 0.75) over each head's first R dimensions only.</summary>
    [Theory]
    [InlineData(ScalarType.Float32, 1.0)]
    [InlineData(ScalarType.BFloat16, 1.0)]
    [InlineData(ScalarType.Float32, 0.75)]
    [InlineData(ScalarType.BFloat16, 0.5)]
    public void Apply_HeadTables_RotateHalfOnQAndKBitForBitAndVUnchanged(ScalarType dtype, double partial)
    {
        using var scope = NewDisposeScope();
        var json = LlamaConfigJson.Create();
        json["partial_rotary_factor"] = partial;
        var c = ModelConfig.Parse(json, "config.json");
        using var rope = new RotaryEmbedding(c, 64, dtype, CPU);
        int rotated = c.NumHeads + c.NumKvHeads, heads = rotated + c.NumKvHeads, d = c.HeadDim, r = c.RotaryDim, half = r / 2;
        Assert.Equal((int)(d * partial), r);
        manual_seed(5);
        var x = randn(7, heads, d).to(dtype);
        var positions = tensor(new long[] { 0, 3, 9, 63, 1, 17, 40 });

        var actual = rope.Apply(x, rope.HeadTables(positions, rotated, heads));

        var cos = rope.Cos.index_select(0, positions).unsqueeze(1);
        var sin = rope.Sin.index_select(0, positions).unsqueeze(1);
        var qk = x.narrow(1, 0, rotated);
        var (x1, x2) = (qk.narrow(2, 0, half), qk.narrow(2, half, half));
        var expected = cat([x1 * cos - x2 * sin, (x2 * cos).Plus(x1 * sin), qk.narrow(2, r, d - r)], 2);
        Assert.True(actual.narrow(1, 0, rotated).equal(expected).all().item<bool>(), "q and k heads differ from HF's rotate-half");
        Assert.True(actual.narrow(1, rotated, heads - rotated).equal(x.narrow(1, rotated, heads - rotated)).all().item<bool>(), "the v heads changed");
    }

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

    [Fact]
    public void InverseFrequencies_Yarn_KeepsFastPairsInterpolatesSlowOnesRampsBetweenAndScalesTheTables()
    {
        var o = LlamaConfigJson.Create();
        o["head_dim"] = 128;
        o["rope_theta"] = 1_000_000.0;                        // Qwen3's, with the factor its card gives for 131,072 tokens
        o["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 32768 };
        var c = ModelConfig.Parse(o, "config.json");
        var plain = RotaryEmbedding.InverseFrequencies(c with { RopeScaling = RopeScaling.None });
        var scaled = RotaryEmbedding.InverseFrequencies(c);

        // 128·ln(32768 / (2π·r)) / (2·ln 10⁶): 23.6 for r = 32 (floored), 39.6 for r = 1 (ceiled).
        for (int i = 0; i < plain.Length; i++)
        {
            if (i <= 23)
                Assert.Equal(plain[i], scaled[i]);
            else if (i >= 40)
                Assert.Equal(plain[i] / 4, scaled[i], 15);
            else
                Assert.InRange(scaled[i], plain[i] / 4, plain[i]);
        }

        Assert.Equal(plain[31] / 4 * (8.0 / 17) + plain[31] * (9.0 / 17), scaled[31], 10);   // the ramp in float32, as HF builds it
        using var rope = new RotaryEmbedding(c, 8, ScalarType.Float32, CPU);
        Assert.Equal((float)(Math.Cos(3 * scaled[50]) * (0.1 * Math.Log(4) + 1)), rope.Cos[3, 50].item<float>(), 6);
        Assert.Equal((float)(Math.Sin(3 * scaled[50]) * (0.1 * Math.Log(4) + 1)), rope.Sin[3, 50].item<float>(), 6);
    }
}
