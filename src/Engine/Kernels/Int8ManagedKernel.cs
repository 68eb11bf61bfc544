using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The portable twin of <see cref="Int8Native"/> for CPUs without AVX512-VNNI (or without the native library): the same
/// quantization (<see cref="Int8Quantizer.QuantizeInputRows"/>) and the same exact integer sums, then the same float32
/// expression, so both give the same values:
/// <code>y[m, n] = round( xscale[m] · W.Scales[n] · (Σ_k (xu[m, k] − 128)·W.Values[n, k]) + bias[n] )</code>
/// On AVX2 the sums take llama.cpp's Q8_0 route: with xq = xu − 128, VPMADDUBSW(|xq|, sign(xq)·w) adds pairs of products of
/// at most 127·127 without saturating, VPMADDWD widens them to 32 bits; each weight row is read once for four input rows.
/// Elsewhere <see cref="Vector{T}"/> code widens before it multiplies.
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
        nint px = (nint)offsetInput, pxs = (nint)inputScales, pb = (nint)bias, py = (nint)y;
        int n = w.Rows, k = w.Columns;
        int parts = Math.Clamp(n / 64, 1, OpenMpTeam.Threads * 4);
        // Whole blocks of four outputs per part, so only the last part has a short block.
        int share = ((n + 3) / 4 + parts - 1) / parts * 4;
        bool f32 = float32Output || !bf16;
        // |xq| and xq made once here for all rows, rather than for every weight row they meet.
        byte[]? split = Avx2.IsSupported ? System.Buffers.ArrayPool<byte>.Shared.Rent(2 * rows * k) : null;
        try
        {
            fixed (byte* ps = split)
            {
                if (split is not null)
                    Split(offsetInput, (long)rows * k, ps, ps + (long)rows * k);
                nint magnitudes = (nint)ps, signs = (nint)(ps + (long)rows * k);
                OpenMpTeam.For(parts, p =>
                {
                    int end = Math.Min(n, (p + 1) * share);
                    for (int o = Math.Min(n, p * share); o < end; o += 4)
                        Outputs(o, Math.Min(4, end - o), (byte*)magnitudes, (sbyte*)signs);
                });
            }
        }
        finally
        {
            if (split is not null)
                System.Buffers.ArrayPool<byte>.Shared.Return(split);
        }

        // Outputs [o, o + count) for every input row; each dot is an exact integer sum, so how rows and outputs are
        // grouped does not change a value.
        void Outputs(int o, int count, byte* magnitudes, sbyte* signs)
        {
            Span<int> dots = stackalloc int[16];   // [input row within the group of four, output]
            Span<int> four = stackalloc int[4];
            fixed (sbyte* weights = &w.Values[(long)o * k])
            {
                for (int m = 0; m < rows; m += 4)
                {
                    int group = Math.Min(4, rows - m);
                    if (magnitudes is null)
                    {
                        for (int j = 0; j < count; j++)
                            for (int r = 0; r < group; r++)
                                dots[r * 4 + j] = Dot(new ReadOnlySpan<byte>((byte*)px + (long)(m + r) * k, k), new ReadOnlySpan<sbyte>(weights + (long)j * k, k));
                    }
                    else if (group == 4)
                    {
                        // Four input rows share each load of one weight row.
                        for (int j = 0; j < count; j++)
                        {
                            DotsAvx2Four(magnitudes + (long)m * k, signs + (long)m * k, k, weights + (long)j * k, four);
                            for (int r = 0; r < 4; r++)
                                dots[r * 4 + j] = four[r];
                        }
                    }
                    else
                    {
                        // A decode step's few rows: four weight rows at a time share each load of the input row.
                        for (int r = 0; r < group; r++)
                        {
                            byte* magnitude = magnitudes + (long)(m + r) * k;
                            sbyte* sign = signs + (long)(m + r) * k;
                            if (count == 4)
                                DotsAvx2FourOutputs(magnitude, sign, k, weights, dots.Slice(r * 4, 4));
                            else
                                for (int j = 0; j < count; j++)
                                    dots[r * 4 + j] = DotAvx2(magnitude, sign, k, weights + (long)j * k);
                        }
                    }

                    for (int r = 0; r < group; r++)
                        for (int j = 0; j < count; j++)
                        {
                            float product = ((float*)pxs)[m + r] * w.Scales[o + j] * (float)dots[r * 4 + j];
                            float b = pb == 0 ? 0f : bf16 ? BitConverter.Int32BitsToSingle(((ushort*)pb)[o + j] << 16) : ((float*)pb)[o + j];
                            float value = product + b;
                            if (f32)
                                ((float*)py)[(m + r) * ldy + o + j] = value;
                            else
                                ((ushort*)py)[(m + r) * ldy + o + j] = RoundToBf16(value);
                        }
                }
            }
        }
    }

    /// <summary>Bytes ahead of the current one that a decode row's weight stream asks for: the prefetcher alone left a core at 60 % of its share of the bandwidth.</summary>
    private const int PrefetchAhead = 1024;

    /// <summary>
    /// dots[j] = Σ_i xq[i]·w[j·k + i] for four consecutive weight rows, one input row given as |xq| and xq
    /// (<see cref="Split"/>): each 32 input bytes are loaded once for the four rows, and one horizontal sum per row ends
    /// the pass, so a decode row's cost per weight byte is the multiply-adds, not the loop around them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotsAvx2FourOutputs(byte* magnitudes, sbyte* signs, int k, sbyte* w, Span<int> dots)
    {
        sbyte* w1 = w + k, w2 = w + 2 * k, w3 = w + 3 * k;
        Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
        int i = 0;
        for (; i + 64 <= k; i += 64)
        {
            Sse.Prefetch0(w + i + PrefetchAhead);
            Sse.Prefetch0(w1 + i + PrefetchAhead);
            Sse.Prefetch0(w2 + i + PrefetchAhead);
            Sse.Prefetch0(w3 + i + PrefetchAhead);
            FourOutputs(magnitudes, signs, w, k, i, ref s0, ref s1, ref s2, ref s3);
            FourOutputs(magnitudes, signs, w, k, i + 32, ref s0, ref s1, ref s2, ref s3);
        }

        if (i + 32 <= k)
        {
            FourOutputs(magnitudes, signs, w, k, i, ref s0, ref s1, ref s2, ref s3);
            i += 32;
        }

        dots[0] = Vector256.Sum(s0);
        dots[1] = Vector256.Sum(s1);
        dots[2] = Vector256.Sum(s2);
        dots[3] = Vector256.Sum(s3);
        for (; i < k; i++)
        {
            dots[0] += signs[i] * w[i];
            dots[1] += signs[i] * w1[i];
            dots[2] += signs[i] * w2[i];
            dots[3] += signs[i] * w3[i];
        }
    }

    /// <summary>Bytes [i, i + 32) of one input row against the same bytes of four weight rows, k apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FourOutputs(byte* magnitudes, sbyte* signs, sbyte* w, int k, int i,
        ref Vector256<int> s0, ref Vector256<int> s1, ref Vector256<int> s2, ref Vector256<int> s3)
    {
        var m = Avx.LoadVector256(magnitudes + i);
        var q = Avx.LoadVector256(signs + i);
        s0 += Product(m, q, Avx.LoadVector256(w + i));
        s1 += Product(m, q, Avx.LoadVector256(w + k + i));
        s2 += Product(m, q, Avx.LoadVector256(w + 2 * k + i));
        s3 += Product(m, q, Avx.LoadVector256(w + 3 * k + i));
    }

    /// <summary>Σ_i xq[i]·w[i] for one input row given as |xq| and xq and one weight row: two accumulators over 64-byte steps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int DotAvx2(byte* magnitudes, sbyte* signs, int k, sbyte* w)
    {
        Vector256<int> even = default, odd = default;
        int i = 0;
        for (; i + 64 <= k; i += 64)
        {
            Sse.Prefetch0(w + i + PrefetchAhead);
            even += Product(Avx.LoadVector256(magnitudes + i), Avx.LoadVector256(signs + i), Avx.LoadVector256(w + i));
            odd += Product(Avx.LoadVector256(magnitudes + i + 32), Avx.LoadVector256(signs + i + 32), Avx.LoadVector256(w + i + 32));
        }

        if (i + 32 <= k)
        {
            even += Product(Avx.LoadVector256(magnitudes + i), Avx.LoadVector256(signs + i), Avx.LoadVector256(w + i));
            i += 32;
        }

        int dot = Vector256.Sum(even + odd);
        for (; i < k; i++)
            dot += signs[i] * w[i];
        return dot;
    }

    /// <summary>Four input rows, given as |xq| and xq (<see cref="Split"/>), sharing each load of the weight row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotsAvx2Four(byte* magnitudes, sbyte* signs, int k, sbyte* w, Span<int> dots)
    {
        Vector256<int> s0 = default, s1 = default, s2 = default, s3 = default;
        int i = 0;
        for (; i + 32 <= k; i += 32)
        {
            var wv = Avx.LoadVector256(w + i);
            s0 += Product(Avx.LoadVector256(magnitudes + i), Avx.LoadVector256(signs + i), wv);
            s1 += Product(Avx.LoadVector256(magnitudes + k + i), Avx.LoadVector256(signs + k + i), wv);
            s2 += Product(Avx.LoadVector256(magnitudes + 2 * k + i), Avx.LoadVector256(signs + 2 * k + i), wv);
            s3 += Product(Avx.LoadVector256(magnitudes + 3 * k + i), Avx.LoadVector256(signs + 3 * k + i), wv);
        }

        dots[0] = Vector256.Sum(s0);
        dots[1] = Vector256.Sum(s1);
        dots[2] = Vector256.Sum(s2);
        dots[3] = Vector256.Sum(s3);
        for (int r = 0; r < 4; r++)
            for (int j = i; j < k; j++)
                dots[r] += signs[(long)r * k + j] * w[j];
    }

    /// <summary>xq = xu − 128 as signed bytes into <paramref name="signs"/>, |xq| into <paramref name="magnitudes"/> (count bytes each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Split(byte* xu, long count, byte* magnitudes, byte* signs)
    {
        var flip = Vector256.Create((byte)0x80);
        long i = 0;
        for (; i + 32 <= count; i += 32)
        {
            var q = Avx2.Xor(Avx.LoadVector256(xu + i), flip).AsSByte();
            Avx2.Abs(q).Store(magnitudes + i);
            q.Store((sbyte*)signs + i);
        }

        for (; i < count; i++)
        {
            sbyte q = (sbyte)(xu[i] ^ 0x80);
            signs[i] = (byte)q;
            magnitudes[i] = (byte)Math.Abs(q);
        }
    }

    /// <summary>
    /// Eight 32-bit sums of xq·w over 32 bytes, given |xq| and xq (<see cref="Split"/>): VPMADDUBSW(|xq|, sign(xq)·w) adds
    /// pairs of products of at most 127·127 (no saturation, since neither side is −128), VPMADDWD widens them to 32 bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Product(Vector256<byte> magnitudes, Vector256<sbyte> signs, Vector256<sbyte> weights) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitudes, Avx2.Sign(weights, signs)), Vector256.Create((short)1));

    /// <summary>Σ_k (xu[k] − 128)·w[k], exactly: products fit 16 bits (|q|, |w| ≤ 127) and are widened before they are added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Dot(ReadOnlySpan<byte> xu, ReadOnlySpan<sbyte> w)
    {
        var sum = Vector<int>.Zero;
        var offset = new Vector<short>(128);
        int i = 0;
        for (; i + Vector<byte>.Count <= w.Length; i += Vector<byte>.Count)
        {
            Vector.Widen(new Vector<byte>(xu.Slice(i)), out var xLow, out var xHigh);
            Vector.Widen(new Vector<sbyte>(w.Slice(i)), out var wLow, out var wHigh);
            AddProducts(Vector.AsVectorInt16(xLow) - offset, Vector.AsVectorInt16(xHigh) - offset, wLow, wHigh, ref sum);
        }

        int total = Vector.Sum(sum);
        for (; i < w.Length; i++)
            total += (xu[i] - 128) * w[i];
        return total;
    }

    private static void AddProducts(Vector<short> xLow, Vector<short> xHigh, Vector<short> wLow, Vector<short> wHigh, ref Vector<int> sum)
    {
        Vector.Widen(xLow * wLow, out var a, out var b);
        Vector.Widen(xHigh * wHigh, out var c, out var d);
        sum += a + b + c + d;
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
