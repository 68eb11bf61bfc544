using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AMX bf16 projection kernel (serving_amx.c) with its tile instructions emulated: packed and run as
/// <see cref="AmxPackedWeight"/> runs it, against float32 sums of the same bf16 values rounded once, with no #UD or #GP
/// the hardware would have raised, on any CPU (the AMX int8 kernel's are in <see cref="Int8AmxNativeTests"/>).
/// </summary>
public sealed class AmxTileEmulationTests
{
    [Theory]
    [InlineData(32, 1536, 1024)]   // a decode step's fused q/k/v on the bench preset
    [InlineData(1, 64, 64)]
    [InlineData(17, 50, 70)]       // rows, outputs and inputs all off the 32 grid: every padding path
    [InlineData(33, 100, 176)]     // two chunks of 32 rows, the second of one
    [InlineData(5, 33, 31)]
    public void Bf16Linear_RandomShapes_EqualsFloat32SumsRoundedOnceWithoutFaults(int m, int n, int k)
    {
        if (!AmxTileEmulation.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        manual_seed(m * 31 + n * 7 + k);
        var w = randn(n, k).to(ScalarType.BFloat16);
        var x = randn(m, k).to(ScalarType.BFloat16);
        var bias = randn(n).Times(4).to(ScalarType.BFloat16);
        var expected = x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t()).Plus(bias.to(ScalarType.Float32)).contiguous().data<float>().ToArray();

        var y = AmxTileEmulation.Bf16Linear(Bits(w), n, k, Bits(x), m, Bits(bias), float32Output: false);
        var asFloat32 = AmxTileEmulation.Bf16Linear(Bits(w), n, k, Bits(x), m, Bits(bias), float32Output: true);

        float orderSlack = 1e-5f * MathF.Sqrt(k);
        for (int i = 0; i < expected.Length; i++)
        {
            float actual = BitConverter.Int32BitsToSingle((int)(y[i] << 16));
            float bound = MathF.Abs(expected[i]) * (1f / 256) + orderSlack;
            Assert.True(MathF.Abs(actual - expected[i]) <= bound, $"element {i}: {actual} vs float32 sum {expected[i]} (bound {bound})");
            Assert.Equal(y[i] << 16, asFloat32[i]);
        }

        var (faults, first) = AmxTileEmulation.Faults;
        Assert.True(faults == 0, $"{faults} faults the hardware would raise; the first: {first}");
    }

    [Fact]
    public void Bf16Linear_WithoutBias_IsTheSumsAlone()
    {
        if (!AmxTileEmulation.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        manual_seed(11);
        var w = randn(40, 96).to(ScalarType.BFloat16);
        var x = randn(3, 96).to(ScalarType.BFloat16);
        var expected = x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t()).to(ScalarType.BFloat16).to(ScalarType.Float32).data<float>().ToArray();

        var y = AmxTileEmulation.Bf16Linear(Bits(w), 40, 96, Bits(x), 3, [], float32Output: true);

        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(BitConverter.Int32BitsToSingle((int)y[i]) - expected[i]) <= MathF.Abs(expected[i]) / 128 + 1e-4f, $"element {i}");
    }

    /// <summary>The bf16 values' bits (a bf16 value is exact in float32: its bits are the float's upper half).</summary>
    private static ushort[] Bits(Tensor bf16) => [.. bf16.to(ScalarType.Float32).contiguous().data<float>().ToArray().Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))];
}
