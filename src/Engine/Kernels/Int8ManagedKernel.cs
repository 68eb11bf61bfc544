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
        int n = w.Rows;
        int parts = Math.Clamp(n / 64, 1, OpenMpTeam.Threads * 4);
        int share = (n + parts - 1) / parts;
        bool f32 = float32Output || !bf16;
        // Rows in fours share each weight load; their |xq| and xq are made once here rather than for every weight row.
        byte[]? split = Avx2.IsSupported && rows >= 4 ? System.Buffers.ArrayPool<byte>.Shared.Rent(2 * rows * w.Columns) : null;
        try
        {
            fixed (byte* ps = split)
            {
                if (split is not null)
                    Split(offsetInput, (long)rows * w.Columns, ps, ps + (long)rows * w.Columns);
                nint magnitudes = (nint)ps, signs = (nint)(ps + (long)rows * w.Columns);
                OpenMpTeam.For(parts, p =>
                {
                    for (int o = Math.Min(n, p * share); o < Math.Min(n, (p + 1) * share); o++)
                        Output(o, (byte*)magnitudes, (sbyte*)signs);
                });
            }
        }
        finally
        {
            if (split is not null)
                System.Buffers.ArrayPool<byte>.Shared.Return(split);
        }

        void Output(int o, byte* magnitudes, sbyte* signs)
        {
            int k = w.Columns;
            float b = pb == 0 ? 0f : bf16 ? BitConverter.Int32BitsToSingle(((ushort*)pb)[o] << 16) : ((float*)pb)[o];
            Span<int> dots = stackalloc int[4];
            fixed (sbyte* weights = &w.Values[o * k])
            {
                for (int m = 0; m < rows; m += 4)
                {
                    int group = Math.Min(4, rows - m);
                    byte* x = (byte*)px + (long)m * k;
                    if (group == 4 && magnitudes is not null)
                        DotsAvx2Four(magnitudes + (long)m * k, signs + (long)m * k, k, weights, dots);
                    else if (Avx2.IsSupported)
                        DotsAvx2(x, group, k, weights, dots);
                    else
                        for (int r = 0; r < group; r++)
                            dots[r] = Dot(new ReadOnlySpan<byte>(x + (long)r * k, k), new ReadOnlySpan<sbyte>(weights, k));
                    for (int r = 0; r < group; r++)
                    {
                        float product = ((float*)pxs)[m + r] * w.Scales[o] * (float)dots[r];
                        float value = product + b;
                        if (f32)
                            ((float*)py)[(m + r) * ldy + o] = value;
                        else
                            ((ushort*)py)[(m + r) * ldy + o] = RoundToBf16(value);
                    }
                }
            }
        }
    }

    /// <summary>Σ_k (xu[r, k] − 128)·w[k] for <paramref name="rows"/> &lt; 4 input rows, one at a time, exactly, on AVX2.</summary>
    private static void DotsAvx2(byte* xu, int rows, int k, sbyte* w, Span<int> dots)
    {
        for (int r = 0; r < rows; r++)
            dots[r] = DotAvx2(xu + (long)r * k, k, w);
    }

    /// <summary>Bytes ahead of the current one that a decode row's weight stream asks for: the prefetcher alone left a core at 60 % of its share of the bandwidth.</summary>
    private const int PrefetchAhead = 1024;

    /// <summary>One input row: two accumulators over 64-byte steps, so the adds of neighbouring steps overlap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int DotAvx2(byte* xu, int k, sbyte* w)
    {
        Vector256<int> even = default, odd = default;
        int i = 0;
        for (; i + 64 <= k; i += 64)
        {
            Sse.Prefetch0(w + i + PrefetchAhead);
            even += Product(Avx.LoadVector256((sbyte*)xu + i), Avx.LoadVector256(w + i));
            odd += Product(Avx.LoadVector256((sbyte*)xu + i + 32), Avx.LoadVector256(w + i + 32));
        }

        if (i + 32 <= k)
        {
            even += Product(Avx.LoadVector256((sbyte*)xu + i), Avx.LoadVector256(w + i));
            i += 32;
        }

        int dot = Vector256.Sum(even + odd);
        for (; i < k; i++)
            dot += (xu[i] - 128) * w[i];
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

    /// <summary><see cref="Product(Vector256{sbyte}, Vector256{sbyte})"/> with |xq| and xq made beforehand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Product(Vector256<byte> magnitudes, Vector256<sbyte> signs, Vector256<sbyte> weights) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(magnitudes, Avx2.Sign(weights, signs)), Vector256.Create((short)1));

    /// <summary>
    /// Eight 32-bit sums of (xu − 128)·w over 32 bytes: xq = xu XOR 0x80 is xu − 128 as a signed byte, and
    /// VPMADDUBSW(|xq|, sign(xq)·w) = xq·w pairwise, at most 2·127·127 (no saturation since neither side is −128).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Product(Vector256<sbyte> offset, Vector256<sbyte> weights)
    {
        var x = Avx2.Xor(offset, Vector256.Create(unchecked((sbyte)0x80)));
        var pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(x), Avx2.Sign(weights, x));
        return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
    }

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
