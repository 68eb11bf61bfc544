using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The portable twin of <see cref="Int8Native"/> for CPUs without AVX512-VNNI (or without the native library): the same
/// quantization (<see cref="Int8Quantizer.QuantizeInputRows"/>) and the same exact integer sums, then the same float32
/// expression, so both give the same values:
/// <code>y[m, n] = round( xscale[m] · W.Scales[n] · (Σ_k xu[m, k]·W.Value(n, k) − 128·W.RowSums[n]) + bias[n] )</code>
/// On AVX2 the sums take llama.cpp's Q8_0 route: with xq = xu − 128, VPMADDUBSW(|xq|, sign(xq)·w) adds pairs of products of
/// at most 127·127 without saturating, VPMADDWD widens them to 32 bits, over the packed blocks of <see cref="Int8Matrix"/>
/// (8 outputs per 32-byte load). Elsewhere plain integer code.
/// </summary>
internal static unsafe class Int8ManagedKernel
{
    /// <summary><see cref="Int8Native.QuantizeRows"/>: rows of <paramref name="x"/> (bf16 or float32) into offset bytes and scales.</summary>
    public static void QuantizeRows(void* x, bool bf16, int rows, int k, byte* offsetValues, float* scales)
    {
        var row = bf16 ? new float[k] : null;
        for (int m = 0; m < rows; m++)
        {
            ReadOnlySpan<float> source;
            if (bf16)
            {
                Bf16.ToFloat(new ReadOnlySpan<ushort>((ushort*)x + (long)m * k, k), row);
                source = row;
            }
            else
            {
                source = new ReadOnlySpan<float>((float*)x + (long)m * k, k);
            }

            Int8Quantizer.QuantizeInputRows(source, 1, k, new Span<byte>(offsetValues + (long)m * k, k), new Span<float>(scales + m, 1));
        }
    }

    /// <summary><see cref="Int8Native.Gemm(byte*, float*, int, Int8Matrix, void*, bool, void*, long, bool)"/>, over the OpenMP team's parts.</summary>
    public static void Gemm(byte* offsetInput, float* inputScales, int rows, Int8Matrix w, void* bias, bool bf16, void* y, long ldy, bool float32Output)
    {
        int blocks = (w.Rows + Int8Matrix.BlockRows - 1) / Int8Matrix.BlockRows;
        int parts = Math.Clamp(blocks, 1, OpenMpTeam.Threads * 4);
        fixed (sbyte* packed = w.Packed)
        fixed (float* scales = w.Scales)
            OpenMpTeam.For(parts, RangeParts<BlocksCall>.Even(
                new BlocksCall(offsetInput, inputScales, rows, w.Rows, w.Columns, w.PaddedColumns, packed, scales, bias, bf16, y, ldy, float32Output || !bf16),
                blocks, parts));
    }

    /// <summary>Packed blocks [from, to) of the weight against every input row.</summary>
    private readonly struct BlocksCall(byte* offsetInput, float* inputScales, int rows, int n, int k, int paddedColumns, sbyte* packed, float* scales,
        void* bias, bool bf16, void* y, long ldy, bool f32) : IParallelRange
    {
        public void Run(long from, long to)
        {
            Span<int> dots = stackalloc int[Int8Matrix.BlockRows];
            for (int b = (int)from; b < to; b++)
            {
                sbyte* block = packed + (long)b * Int8Matrix.BlockRows * paddedColumns;
                int first = b * Int8Matrix.BlockRows, count = Math.Min(Int8Matrix.BlockRows, n - first);
                for (int m = 0; m < rows; m++)
                {
                    byte* x = offsetInput + (long)m * k;
                    if (Avx2.IsSupported)
                        BlockDotsAvx2(x, k, block, dots);
                    else
                        BlockDots(x, k, block, dots);
                    for (int o = 0; o < count; o++)
                    {
                        float b16 = bias == null ? 0f : bf16 ? BitConverter.Int32BitsToSingle(((ushort*)bias)[first + o] << 16) : ((float*)bias)[first + o];
                        float product = inputScales[m] * scales[first + o] * (float)dots[o];
                        float value = product + b16;
                        if (f32)
                            ((float*)y)[m * ldy + first + o] = value;
                        else
                            ((ushort*)y)[m * ldy + first + o] = RoundToBf16(value);
                    }
                }
            }
        }
    }

    /// <summary>
    /// Σ_k (xu[k] − 128)·W[o, k] for the 64 outputs o of one packed block (<see cref="Int8Matrix"/>), exactly, on AVX2: each
    /// group of 4 inputs, broadcast, meets 8 outputs' 4 weights per 32-byte load. With xq = xu − 128 (xu XOR 0x80 as a
    /// signed byte), VPMADDUBSW(|xq|, sign(xq)·w) = xq·w pairwise, at most 2·127·127 (no saturation since neither side is
    /// −128), VPMADDWD adds the pairs into 32 bits. Inputs past k count as xq = 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BlockDotsAvx2(byte* xu, int k, sbyte* block, Span<int> dots)
    {
        Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        var ones = Vector256.Create((short)1);
        int groups = (k + Int8Matrix.GroupColumns - 1) / Int8Matrix.GroupColumns;
        for (int q = 0; q < groups; q++)
        {
            uint four = 0x80808080u;
            if (4 * q + 4 <= k)
                four = Unsafe.ReadUnaligned<uint>(xu + 4 * q);
            else
                for (int i = 0; 4 * q + i < k; i++)
                    four = four & ~(0xFFu << (8 * i)) | (uint)xu[4 * q + i] << (8 * i);
            var xq = Vector256.Create(four ^ 0x80808080u).AsSByte();
            var magnitude = Avx2.Abs(xq);
            sbyte* g = block + q * Int8Matrix.BlockRows * Int8Matrix.GroupColumns;
            a0 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g), xq)), ones);
            a1 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 32), xq)), ones);
            a2 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 64), xq)), ones);
            a3 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 96), xq)), ones);
            a4 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 128), xq)), ones);
            a5 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 160), xq)), ones);
            a6 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 192), xq)), ones);
            a7 += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitude, Avx2.Sign(Avx.LoadVector256(g + 224), xq)), ones);
        }

        a0.CopyTo(dots);
        a1.CopyTo(dots[8..]);
        a2.CopyTo(dots[16..]);
        a3.CopyTo(dots[24..]);
        a4.CopyTo(dots[32..]);
        a5.CopyTo(dots[40..]);
        a6.CopyTo(dots[48..]);
        a7.CopyTo(dots[56..]);
    }

    /// <summary><see cref="BlockDotsAvx2"/> without AVX2, in plain integers.</summary>
    internal static void BlockDots(byte* xu, int k, sbyte* block, Span<int> dots)
    {
        for (int o = 0; o < Int8Matrix.BlockRows; o++)
        {
            int dot = 0;
            for (int c = 0; c < k; c++)
                dot += (xu[c] - 128) * block[c / Int8Matrix.GroupColumns * Int8Matrix.BlockRows * Int8Matrix.GroupColumns + o * Int8Matrix.GroupColumns + c % Int8Matrix.GroupColumns];
            dots[o] = dot;
        }
    }

    /// <summary>float32 → bfloat16, nearest even (as serving_to_bf16; NaN stays NaN).</summary>
    private static ushort RoundToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
            return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)(bits >> 16);
    }
}
