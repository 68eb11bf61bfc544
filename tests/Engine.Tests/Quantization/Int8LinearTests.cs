using Serving.Engine.Kernels;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Quantization;

/// <summary>
/// <see cref="Int8Linear"/>'s two kernels: the portable one against exact integer sums, and the native (VNNI) one equal to
/// the portable one value for value, in float32 and bfloat16, for decode-sized and prefill-sized row counts.
/// </summary>
public sealed unsafe class Int8LinearTests
{
    private static float[] Random(int count, int seed, float spread = 1)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(r.NextDouble() * 2 - 1) * spread)];
    }

    private static ushort[] ToBf16(float[] values) => [.. values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16))];

    private static ushort RoundToBf16(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    private static float FromBf16(ushort h) => BitConverter.Int32BitsToSingle(h << 16);

    [Theory]
    [InlineData(1, 70, 33)]
    [InlineData(1, 1024, 258)]   // four outputs at a time, 64-byte steps, one short block at the end
    [InlineData(2, 96, 3)]       // fewer outputs than one block
    [InlineData(3, 200, 37)]
    [InlineData(5, 128, 64)]
    [InlineData(67, 96, 130)]
    public void Gemm_PortableKernel_EqualsExactIntegerSums(int rows, int inputs, int outputs)
    {
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, 1, 0.05f), outputs, inputs);
        var x = Random(rows * inputs, 2);
        var bias = Random(outputs, 3);
        var offset = new byte[rows * inputs];
        var scales = new float[rows];
        var y = new float[rows * outputs];
        fixed (float* px = x)
        fixed (byte* pu = offset)
        fixed (float* ps = scales)
        fixed (float* pb = bias)
        fixed (float* py = y)
        {
            Int8ManagedKernel.QuantizeRows(px, false, rows, inputs, pu, ps);
            Int8ManagedKernel.Gemm(pu, ps, rows, w, pb, false, py, outputs, float32Output: true);
        }

        for (int m = 0; m < rows; m++)
            for (int n = 0; n < outputs; n++)
            {
                long dot = 0;
                for (int k = 0; k < inputs; k++)
                    dot += (offset[m * inputs + k] - 128) * w.Value(n, k);
                float product = scales[m] * w.Scales[n] * (float)dot;
                Assert.Equal(product + bias[n], y[m * outputs + n]);
            }
    }

    [Theory]
    [InlineData(1, false, 200)]
    [InlineData(4, true, 200)]
    [InlineData(70, false, 200)]
    [InlineData(70, true, 200)]
    [InlineData(5, true, 203)]    // a last group of three inputs
    public void Apply_NativeKernel_EqualsThePortableOne(int rows, bool bf16, int inputs)
    {
        if (!Int8Native.IsAvailable)
            return;
        const int outputs = 150;
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, 4, 0.05f), outputs, inputs);
        var x = Random(rows * inputs, 5);
        var bias = Random(outputs, 6);
        ushort[] xh = ToBf16(x), bh = ToBf16(bias);
        var native = new ushort[rows * outputs * 2];
        var portable = new ushort[rows * outputs * 2];
        var offset = new byte[rows * inputs];
        var scales = new float[rows];
        fixed (float* px = x)
        fixed (float* pb = bias)
        fixed (ushort* pxh = xh)
        fixed (ushort* pbh = bh)
        fixed (ushort* pn = native)
        fixed (ushort* pp = portable)
        fixed (byte* pu = offset)
        fixed (float* ps = scales)
        {
            void* input = bf16 ? pxh : px, b = bf16 ? pbh : pb;
            Int8Linear.Apply(w, input, bf16, rows, b, pn, outputs, float32Output: false);
            Int8ManagedKernel.QuantizeRows(input, bf16, rows, inputs, pu, ps);
            Int8ManagedKernel.Gemm(pu, ps, rows, w, b, bf16, pp, outputs, float32Output: false);
        }

        Assert.Equal(portable, native);
        Assert.Contains(native, v => v != 0);
    }

    [Fact]
    public void Apply_Bf16InputsFloat32Output_LogitsAsTheFloatOutputRounded()
    {
        const int rows = 3, inputs = 64, outputs = 40;
        var w = Int8Quantizer.QuantizeRows(Random(outputs * inputs, 7, 0.05f), outputs, inputs);
        var xh = ToBf16(Random(rows * inputs, 8));
        var logits = new float[rows * outputs];
        var rounded = new ushort[rows * outputs];
        fixed (ushort* px = xh)
        fixed (float* pl = logits)
        fixed (ushort* pr = rounded)
        {
            Int8Linear.Apply(w, px, true, rows, null, pl, outputs, float32Output: true);
            Int8Linear.Apply(w, px, true, rows, null, pr, outputs, float32Output: false);
        }

        for (int i = 0; i < logits.Length; i++)
            Assert.Equal(RoundToBf16(logits[i]), rounded[i]);
        Assert.Contains(logits, v => v != FromBf16(RoundToBf16(v)));   // the float32 output was not rounded to bf16
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(37)]
    public void BlockDots_WithoutAvx2_EqualsTheAvx2Sums(int inputs)
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported)
            return;
        var w = Int8Quantizer.QuantizeRows(Random(130 * inputs, 7), 130, inputs);
        var offset = new byte[inputs];
        var scales = new float[1];
        Int8Quantizer.QuantizeInputRows(Random(inputs, 8), 1, inputs, offset, scales);
        var simd = new int[64];
        var plain = new int[64];

        fixed (sbyte* packed = w.Packed)
        fixed (byte* x = offset)
        {
            sbyte* block = packed + 64L * w.PaddedColumns;   // the second block of rows
            Int8ManagedKernel.BlockDotsAvx2(x, inputs, block, simd);
            Int8ManagedKernel.BlockDots(x, inputs, block, plain);
        }

        Assert.Equal(plain, simd);
        long first = 0;
        for (int k = 0; k < inputs; k++)
            first += (offset[k] - 128) * w.Value(64, k);
        Assert.Equal(first, plain[0]);
    }
}
