namespace Serving.Engine.Checkpoints;

/// <summary>
/// OCP microscaling FP4 (MXFP4) as gpt-oss's checkpoints store its experts: each row's inputs in groups of 32, a group as 16
/// bytes of two E2M1 values each (the low nibble first) and one shared E8M0 scale byte:
/// <code>
/// blocks [rows, G, 16]  scales [rows, G]  →  w [rows, G·32]     w[r, 32·g + 2i]     = FP4[blocks[r, g, i] &amp; 0xF] · 2^(scales[r, g] − 127)
///                                                                w[r, 32·g + 2i + 1] = FP4[blocks[r, g, i] >> 4]  · 2^(scales[r, g] − 127)
/// FP4 = ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}, the sign in bit 3
/// </code>
/// as transformers' <c>convert_moe_packed_tensors</c> dequantizes them; every value is exact in bf16 and float32.
/// </summary>
public static class Mxfp4
{
    /// <summary>Values per block (and per scale).</summary>
    public const int GroupSize = 32;

    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = GroupSize / 2;

    private static readonly float[] Values = [0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f];

    /// <param name="blocks">[groups · 16] bytes.</param>
    /// <param name="scales">[groups] bytes.</param>
    /// <param name="output">[groups · 32] values.</param>
    public static void Dequantize(ReadOnlySpan<byte> blocks, ReadOnlySpan<byte> scales, Span<float> output)
    {
        if (blocks.Length != scales.Length * BlockBytes || output.Length != scales.Length * GroupSize)
            throw new ArgumentException($"MXFP4: {scales.Length} scales need {scales.Length * BlockBytes} block bytes and {scales.Length * GroupSize} outputs, got {blocks.Length} and {output.Length}");
        for (int group = 0; group < scales.Length; group++)
        {
            float scale = MathF.ScaleB(1f, scales[group] - 127);
            var block = blocks.Slice(group * BlockBytes, BlockBytes);
            var values = output.Slice(group * GroupSize, GroupSize);
            for (int i = 0; i < BlockBytes; i++)
            {
                values[2 * i] = Values[block[i] & 0xF] * scale;
                values[2 * i + 1] = Values[block[i] >> 4] * scale;
            }
        }
    }

    /// <summary>
    /// <see cref="Dequantize"/>'s inverse for values it can hold (tests and the synthetic checkpoints): each group's scale the
    /// power of two that brings its largest magnitude to at most 6, each value rounded to the nearest E2M1 value (ties to
    /// the even code, as the format's round-to-nearest-even).
    /// </summary>
    public static (byte[] Blocks, byte[] Scales) Quantize(ReadOnlySpan<float> values)
    {
        if (values.Length % GroupSize != 0)
            throw new ArgumentException($"MXFP4 quantizes groups of {GroupSize} values, got {values.Length}");
        int groups = values.Length / GroupSize;
        var blocks = new byte[groups * BlockBytes];
        var scales = new byte[groups];
        for (int group = 0; group < groups; group++)
        {
            var v = values.Slice(group * GroupSize, GroupSize);
            float max = 0;
            foreach (float x in v)
                max = MathF.Max(max, MathF.Abs(x));
            int exponent = max == 0 ? 0 : Math.Clamp((int)MathF.Ceiling(MathF.Log2(max / 6f)), -127, 127);
            scales[group] = (byte)(exponent + 127);
            float scale = MathF.ScaleB(1f, exponent);
            for (int i = 0; i < GroupSize; i++)
            {
                int code = Nearest(v[i] / scale);
                blocks[group * BlockBytes + i / 2] |= (byte)(i % 2 == 0 ? code : code << 4);
            }
        }

        return (blocks, scales);
    }

    private static int Nearest(float x)
    {
        int best = 0;
        for (int code = 1; code < Values.Length; code++)
        {
            float d = MathF.Abs(Values[code] - x), bestD = MathF.Abs(Values[best] - x);
            if (d < bestD || d == bestD && (code & 1) == 0 && (best & 1) == 1)
                best = code;
        }

        return best;
    }
}
