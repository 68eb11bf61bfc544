using System.Runtime.Intrinsics;
using Serving.Engine.Kernels;

namespace Serving.Engine.Tests.Kernels;

public sealed class VectorExpTests
{
    /// <summary>Within 2 ulp of the exact exponential from e^−87 to e^88, and the limits beyond.</summary>
    [Fact]
    public void Exp_AcrossTheFloatRange_IsWithinTwoUlpOfTheExactValue()
    {
        if (!VectorExp.IsSupported)
            return;
        var random = new Random(7);
        var inputs = Enumerable.Range(0, 160_000).Select(i => i < 80_000 ? (float)(random.NextDouble() * 175 - 87) : (float)(random.NextDouble() * 4 - 2))
            .Concat([0f, -0f, 1f, -1f, 88.7f, -87.3f]).ToArray();
        double worst = 0;
        for (int i = 0; i + 16 <= inputs.Length; i += 16)
        {
            var result = VectorExp.Exp(Vector512.Create(inputs.AsSpan(i, 16)));
            for (int lane = 0; lane < 16; lane++)
            {
                double exact = Math.Exp(inputs[i + lane]);
                double ulp = MathF.BitIncrement((float)exact) - (float)exact;
                worst = Math.Max(worst, Math.Abs(result[lane] - exact) / ulp);
            }
        }

        Assert.True(worst <= 2, $"worst error {worst:F2} ulp");
    }

    [Fact]
    public void Exp_BeyondTheRange_GivesInfinityZeroAndKeepsNaN()
    {
        if (!VectorExp.IsSupported)
            return;
        var result = VectorExp.Exp(Vector512.Create([100f, float.PositiveInfinity, -110f, float.NegativeInfinity, float.NaN, -95f,
            0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f]));

        Assert.Equal(float.PositiveInfinity, result[0]);
        Assert.Equal(float.PositiveInfinity, result[1]);
        Assert.Equal(0f, result[2]);
        Assert.Equal(0f, result[3]);
        Assert.True(float.IsNaN(result[4]));
        Assert.InRange(result[5], 5.5e-42f, 5.6e-42f);   // a subnormal: e^−95 ≈ 5.52e−42
        Assert.Equal(1f, result[6]);
    }

    [Fact]
    public void Sigmoid_MatchesTheExactLogistic()
    {
        if (!VectorExp.IsSupported)
            return;
        var inputs = Enumerable.Range(0, 16).Select(i => (i - 8) * 3.1f).ToArray();
        var result = VectorExp.Sigmoid(Vector512.Create(inputs));
        for (int lane = 0; lane < 16; lane++)
            Assert.Equal(1 / (1 + Math.Exp(-inputs[lane])), result[lane], 1e-7);
    }
}
