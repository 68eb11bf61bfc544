using Serving.Engine.Checkpoints;

namespace Serving.Engine.Tests.Checkpoints;

public sealed class Mxfp4Tests
{
    /// <summary>Both nibbles of a byte, low first, each an E2M1 code (the sign in bit 3) times 2^(scale − 127).</summary>
    [Fact]
    public void Dequantize_KnownBytes_ValuesAsTheFormatDefinesThem()
    {
        var blocks = new byte[16];
        blocks[0] = 0x71;           // low 1 → 0.5, high 7 → 6
        blocks[1] = 0xA8;           // low 8 → −0, high 10 → −1
        blocks[15] = 0x3F;          // low 15 → −6, high 3 → 1.5
        var values = new float[32];

        Mxfp4.Dequantize(blocks, [127 + 3], values);

        Assert.Equal([4f, 48f, -0f, -8f], values[..4]);
        Assert.True(float.IsNegative(values[2]));
        Assert.Equal([-48f, 12f], values[30..]);
        Assert.All(values[4..30], v => Assert.Equal(0f, v));
    }

    /// <summary>Values the format holds survive a round trip bit for bit; others land on the nearest of their group's grid.</summary>
    [Fact]
    public void Quantize_ThenDequantize_ExactOnTheGridAndNearestOffIt()
    {
        float[] onGrid = [.. Enumerable.Range(0, 64).Select(i => (i % 2 == 0 ? 1 : -1) * new[] { 0f, 0.5f, 1, 1.5f, 2, 3, 4, 6 }[i % 8] * (i < 32 ? 0.25f : 64f))];
        var (blocks, scales) = Mxfp4.Quantize(onGrid);
        var back = new float[64];
        Mxfp4.Dequantize(blocks, scales, back);
        Assert.Equal(onGrid, back);

        float[] offGrid = [.. Enumerable.Range(0, 32).Select(i => 6f * MathF.Sin(i + 1))];
        (blocks, scales) = Mxfp4.Quantize(offGrid);
        Mxfp4.Dequantize(blocks, scales, back.AsSpan(0, 32));
        Assert.Equal(127, scales[0]);                       // the largest |value| is within 6: a scale of 2⁰
        float[] grid = [0f, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.5f, -1, -1.5f, -2, -3, -4, -6];
        for (int i = 0; i < 32; i++)
            Assert.True(grid.All(g => MathF.Abs(back[i] - offGrid[i]) <= MathF.Abs(g - offGrid[i])), $"{offGrid[i]} → {back[i]}, not the nearest");
    }

    [Fact]
    public void Dequantize_MismatchedLengths_Throws() =>
        Assert.Throws<ArgumentException>(() => Mxfp4.Dequantize(new byte[15], new byte[1], new float[32]));
}
