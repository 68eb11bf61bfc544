using Serving.Engine.Checkpoints;

namespace Serving.Engine.Quantization;

/// <summary>
/// A projection <c>W [Rows, Columns]</c> held as its checkpoint's MXFP4 (<see cref="Mxfp4"/>): per output row, groups of 32
/// inputs as 16 bytes of E2M1 pairs and one E8M0 scale byte — 4.25 bits a weight, against bf16's 16. Its values are exactly
/// the dequantized checkpoint's; only the bytes a decode step streams shrink. Arrays pinned for the kernel's addresses.
/// </summary>
public sealed class Mxfp4Matrix
{
    /// <param name="rows">Output rows.</param>
    /// <param name="columns">Inputs, a multiple of 32.</param>
    /// <param name="blocks">[rows, columns / 32, 16], copied.</param>
    /// <param name="scales">[rows, columns / 32], copied.</param>
    public Mxfp4Matrix(int rows, int columns, ReadOnlySpan<byte> blocks, ReadOnlySpan<byte> scales)
    {
        if (rows < 1 || columns < Mxfp4.GroupSize || columns % Mxfp4.GroupSize != 0)
            throw new ArgumentException($"an MXFP4 matrix has whole groups of {Mxfp4.GroupSize} inputs, not [{rows}, {columns}]");
        long groups = (long)rows * (columns / Mxfp4.GroupSize);
        if (blocks.Length != groups * Mxfp4.BlockBytes || scales.Length != groups)
            throw new ArgumentException($"an MXFP4 [{rows}, {columns}] matrix has {groups * Mxfp4.BlockBytes} block bytes and {groups} scales, not {blocks.Length} and {scales.Length}");
        Rows = rows;
        Columns = columns;
        Blocks = GC.AllocateUninitializedArray<byte>(blocks.Length, pinned: true);
        Scales = GC.AllocateUninitializedArray<byte>(scales.Length, pinned: true);
        blocks.CopyTo(Blocks);
        scales.CopyTo(Scales);
    }

    public int Rows { get; }
    public int Columns { get; }

    /// <summary>Groups of 32 inputs per row.</summary>
    public int Groups => Columns / Mxfp4.GroupSize;

    /// <summary>[Rows, Groups, 16] E2M1 pairs, the low nibble the even input.</summary>
    public byte[] Blocks { get; }

    /// <summary>[Rows, Groups] E8M0 exponents, 2^(s − 127).</summary>
    public byte[] Scales { get; }

    public long Bytes => Blocks.LongLength + Scales.LongLength;

    /// <summary>Rows [<paramref name="first"/>, first + <paramref name="count"/>) dequantized into <paramref name="output"/> <c>[count, Columns]</c>.</summary>
    public void Dequantize(int first, int count, Span<float> output)
    {
        int groups = Groups;
        Mxfp4.Dequantize(Blocks.AsSpan(first * groups * Mxfp4.BlockBytes, count * groups * Mxfp4.BlockBytes), Scales.AsSpan(first * groups, count * groups),
            output[..(count * Columns)]);
    }
}
