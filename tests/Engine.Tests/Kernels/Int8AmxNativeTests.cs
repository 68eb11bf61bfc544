using Serving.Engine.Kernels;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AMX int8 kernel (serving_int8_amx.c): its own code with the tile instructions emulated (serving_tile.h) on any
/// CPU (<see cref="AmxTileEmulation"/>), bit for bit against the exact integer sums and the epilogue's float32 expression, with no #UD or #GP the hardware
/// would have raised; on a CPU with AMX-INT8, the hardware kernel through <see cref="Int8Native"/> against the emulation.
/// </summary>
public sealed class Int8AmxNativeTests
{
    private static float[] Random(int count, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(r.NextDouble() * 2 - 1))];
    }

    private static (Int8Matrix W, byte[] Offset, float[] Scales, float[] Bias) Case(int rows, int inputs, int outputs)
    {
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, inputs), outputs, inputs);
        var offset = new byte[rows * inputs];
        var scales = new float[rows];
        Int8Quantizer.QuantizeInputRows(Random(rows * inputs, rows), rows, inputs, offset, scales);
        return (w, offset, scales, Random(outputs, 5));
    }

    private static float Expected(Int8Matrix w, byte[] offset, float[] scales, float[] bias, int m, int n)
    {
        int dot = 0;
        for (int k = 0; k < w.Columns; k++)
            dot += (offset[m * w.Columns + k] - 128) * w.Value(n, k);
        return scales[m] * w.Scales[n] * dot + (bias.Length == 0 ? 0 : bias[n]);
    }

    [Theory]
    [InlineData(1, 64, 64)]       // one row, one run, one block
    [InlineData(7, 68, 80)]       // a run and a last run of one group; a block and a part of one
    [InlineData(16, 1024, 130)]   // one whole chunk of rows, sixteen runs, outputs ending inside a third block
    [InlineData(17, 132, 64)]     // a chunk of 16, then 1: the tiles configured twice
    [InlineData(19, 4, 20)]       // no whole run at all: only the last, short one
    [InlineData(40, 2816, 70)]    // the bench preset's down projection's inputs
    [InlineData(64, 96, 40)]      // a whole block of 64 rows
    [InlineData(70, 1028, 64)]    // two row blocks (64 and 6), a last run of one group
    [InlineData(130, 64, 16)]     // three row blocks, a block of 16 outputs
    public void EmulatedGemm_AnyShape_EqualsExactSumsBitForBitWithoutFaults(int rows, int inputs, int outputs)
    {
        if (!AmxTileEmulation.IsAvailable)
            return;
        var (w, offset, scales, bias) = Case(rows, inputs, outputs);
        int ldy = outputs + 3;
        var y = Enumerable.Repeat(7f, rows * ldy).ToArray();

        AmxTileEmulation.Int8Gemm(offset, scales, rows, w, bias, y, ldy, 0, (outputs + 63) / 64);

        for (int m = 0; m < rows; m++)
        {
            for (int n = 0; n < outputs; n++)
                Assert.True(BitConverter.SingleToInt32Bits(Expected(w, offset, scales, bias, m, n)) == BitConverter.SingleToInt32Bits(y[m * ldy + n]),
                    $"({m}, {n}): {y[m * ldy + n]} vs {Expected(w, offset, scales, bias, m, n)}");
            for (int n = outputs; n < ldy; n++)
                Assert.Equal(7f, y[m * ldy + n]);
        }

        var (faults, first) = AmxTileEmulation.Faults;
        Assert.True(faults == 0, $"{faults} faults the hardware would raise; the first: {first}");
    }

    [Fact]
    public void EmulatedGemm_SomeBlocks_WritesOnlyTheirOutputs()
    {
        if (!AmxTileEmulation.IsAvailable)
            return;
        const int rows = 9, inputs = 132, outputs = 200;
        var (w, offset, scales, _) = Case(rows, inputs, outputs);
        var y = Enumerable.Repeat(7f, rows * outputs).ToArray();

        AmxTileEmulation.Int8Gemm(offset, scales, rows, w, [], y, outputs, 1, 3);

        for (int m = 0; m < rows; m++)
            for (int n = 0; n < outputs; n++)
                Assert.Equal(n is >= 64 and < 192 ? Expected(w, offset, scales, [], m, n) : 7f, y[m * outputs + n]);
        Assert.Equal(0, AmxTileEmulation.Faults.Count);
    }

    [Fact]
    public void EmulatedGemm_InputsNotInWholeGroups_Refused()
    {
        if (!AmxTileEmulation.IsAvailable)
            return;
        var (w, offset, scales, _) = Case(8, 66, 16);

        var error = Assert.Throws<ArgumentException>(() => AmxTileEmulation.Int8Gemm(offset, scales, 8, w, [], new float[8 * 16], 16, 0, 1));

        Assert.Contains("66", error.Message);
    }

    [Theory]
    [InlineData(7, 68, 80)]
    [InlineData(16, 1024, 130)]
    [InlineData(33, 2816, 300)]
    [InlineData(200, 1024, 1100)] // prefill-shaped: several row blocks, several parts per thread
    public void Gemm_OnAnAmxCpu_EqualsTheEmulatedKernel(int rows, int inputs, int outputs)
    {
        if (!Int8AmxNative.IsAvailable || !Int8AmxNative.Takes(rows, inputs))
            return;
        var (w, offset, scales, bias) = Case(rows, inputs, outputs);
        var hardware = new float[rows * outputs];
        var emulated = new float[rows * outputs];

        Int8Native.Gemm(offset, scales, rows, w, bias, hardware, outputs);
        AmxTileEmulation.Int8Gemm(offset, scales, rows, w, bias, emulated, outputs, 0, (outputs + 63) / 64);

        Assert.Equal(emulated, hardware);
    }
}
