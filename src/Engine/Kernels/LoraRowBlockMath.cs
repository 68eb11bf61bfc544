using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="LoraRowMath"/> for four rows that share one adapter: every weight vector is loaded (and, for bfloat16,
/// widened) once and used for all four rows, which cuts loads and conversions by four when several rows of a batch use
/// the same adapter. Activations and accumulators are float32.
/// <code>
/// Shrink4: h_k[j] = A[j, :] · x_k                 k &lt; 4, j &lt; rank   (4 A rows × 4 x rows per pass: 16 accumulators;
///                                                                  x rows in the weights' pair order, ITensorElement)
/// Expand4Add: y_k[o] += Σ_j h_k[j] · Bt[j, o]                       (64 outputs × 4 rows in registers across all j — 16
///                                                                  FMAs per weight row read, then groups of 32 — in pair
///                                                                  order, added to y once, rounded once for bfloat16)
/// </code>
/// For bfloat16 both loops prefetch: Shrink4 the next four A rows while it reads the current four, Expand4Add each Bt row
/// <see cref="ExpandPrefetchBytes"/> ahead. Inside a forward pass the base GEMMs have evicted the adapter by the time its
/// block runs, and rows of 0.5–5.5 KB are too short for the hardware prefetcher to ramp up on (bf16 bench preset, batch
/// 32, kernel time inside the forward, same process alternating: 8 adapters × 4 rows 4.3–4.9 → 3.3–3.9 ms, Zipf rows
/// over 8 adapters −7 %, one adapter −5 %).
/// </summary>
internal static unsafe class LoraRowBlockMath
{
    public const int Rows = 4;

    /// <summary>How far ahead in each Bt row the bfloat16 expand prefetches.</summary>
    private const int ExpandPrefetchBytes = 512;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Shrink4(void* a, bool bf16, int rank, int inF, float* x, float* h)
    {
        // x: 4 rows of inF floats back to back; h: 4 rows of rank floats back to back.
        int j = 0;
        if (VectorExp.IsSupported)
        {
            for (; j + 4 <= rank; j += 4)
            {
                if (bf16)
                    Block4x4<BFloat16Element>((byte*)a + 2L * j * inF, inF, x, h + j, rank, j + 8 <= rank);
                else
                    Block4x4<Float32Element>((byte*)a + 4L * j * inF, inF, x, h + j, rank, false);
            }
        }

        for (; j < rank; j++)
            for (int k = 0; k < Rows; k++)
            {
                float sum = 0;
                for (int i = 0; i < inF; i++)
                    sum += Weight(a, bf16, (long)j * inF + i) * x[k * inF + PairOrder.Index(i, inF, bf16)];
                h[k * rank + j] = sum;
            }
    }

    /// <summary>Adds the four rows' updates to their outputs <paramref name="y0"/>..<paramref name="y3"/> (rows of y in the compute dtype).</summary>
    public static void Expand4Add(void* bt, bool bf16, int rank, int outF, float* h, byte* y0, byte* y1, byte* y2, byte* y3)
    {
        int o = 0;
        if (VectorExp.IsSupported)
            o = bf16 ? Expand4AddVectors<BFloat16Element>((byte*)bt, rank, outF, h, y0, y1, y2, y3)
                : Expand4AddVectors<Float32Element>((byte*)bt, rank, outF, h, y0, y1, y2, y3);
        if (o < outF)
        {
            AddTail(bt, bf16, rank, outF, o, h, y0);
            AddTail(bt, bf16, rank, outF, o, h + rank, y1);
            AddTail(bt, bf16, rank, outF, o, h + 2 * rank, y2);
            AddTail(bt, bf16, rank, outF, o, h + 3 * rank, y3);
        }
    }

    /// <summary>
    /// Whole groups of 64 outputs, then of 32, in pair order; returns where the tail starts. 64 at a time halves the loads,
    /// broadcasts and loop work per FMA (kernel inside the bf16 forward, one adapter: −4 to −25 %, 8 adapters: −3 to −6 %).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int Expand4AddVectors<T>(byte* bt, int rank, int outF, float* h, byte* y0, byte* y1, byte* y2, byte* y3) where T : struct, ITensorElement
    {
        // h: 4 rows of rank floats. The sums stay in registers and go straight into y: no accumulator rows to clear,
        // store and add in separate passes (for bf16 that was three passes over every output row).
        int o = 0;
        nint rowBytes = (nint)outF * T.Size;
        nint half = 32 * T.Size;
        for (; o + 64 <= outF; o += 64)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
            byte* w = bt + (nint)o * T.Size;
            float* hj = h;
            for (int j = 0; j < rank; j++, w += rowBytes, hj++)
            {
                if (typeof(T) == typeof(BFloat16Element))
                {
                    Sse.Prefetch0(w + ExpandPrefetchBytes);
                    Sse.Prefetch0(w + half + ExpandPrefetchBytes);
                }

                var w0 = T.LoadPairFirst(w);
                var w1 = T.LoadPairSecond(w);
                var w2 = T.LoadPairFirst(w + half);
                var w3 = T.LoadPairSecond(w + half);
                var h0 = Vector512.Create(hj[0]);
                a0 = Vector512.FusedMultiplyAdd(w0, h0, a0);
                a1 = Vector512.FusedMultiplyAdd(w1, h0, a1);
                a2 = Vector512.FusedMultiplyAdd(w2, h0, a2);
                a3 = Vector512.FusedMultiplyAdd(w3, h0, a3);
                var h1 = Vector512.Create(hj[rank]);
                b0 = Vector512.FusedMultiplyAdd(w0, h1, b0);
                b1 = Vector512.FusedMultiplyAdd(w1, h1, b1);
                b2 = Vector512.FusedMultiplyAdd(w2, h1, b2);
                b3 = Vector512.FusedMultiplyAdd(w3, h1, b3);
                var h2 = Vector512.Create(hj[2 * rank]);
                c0 = Vector512.FusedMultiplyAdd(w0, h2, c0);
                c1 = Vector512.FusedMultiplyAdd(w1, h2, c1);
                c2 = Vector512.FusedMultiplyAdd(w2, h2, c2);
                c3 = Vector512.FusedMultiplyAdd(w3, h2, c3);
                var h3 = Vector512.Create(hj[3 * rank]);
                d0 = Vector512.FusedMultiplyAdd(w0, h3, d0);
                d1 = Vector512.FusedMultiplyAdd(w1, h3, d1);
                d2 = Vector512.FusedMultiplyAdd(w2, h3, d2);
                d3 = Vector512.FusedMultiplyAdd(w3, h3, d3);
            }

            nint at = (nint)o * T.Size;
            T.AddPair(y0 + at, a0, a1);
            T.AddPair(y0 + at + half, a2, a3);
            T.AddPair(y1 + at, b0, b1);
            T.AddPair(y1 + at + half, b2, b3);
            T.AddPair(y2 + at, c0, c1);
            T.AddPair(y2 + at + half, c2, c3);
            T.AddPair(y3 + at, d0, d1);
            T.AddPair(y3 + at + half, d2, d3);
        }

        for (; o + 32 <= outF; o += 32)
        {
            Vector512<float> a0 = default, a1 = default, b0 = default, b1 = default, c0 = default, c1 = default, d0 = default, d1 = default;
            byte* w = bt + (nint)o * T.Size;
            float* hj = h;
            for (int j = 0; j < rank; j++, w += rowBytes, hj++)
            {
                if (typeof(T) == typeof(BFloat16Element))
                    Sse.Prefetch0(w + ExpandPrefetchBytes);
                var w0 = T.LoadPairFirst(w);
                var w1 = T.LoadPairSecond(w);
                var h0 = Vector512.Create(hj[0]);
                var h1 = Vector512.Create(hj[rank]);
                var h2 = Vector512.Create(hj[2 * rank]);
                var h3 = Vector512.Create(hj[3 * rank]);
                a0 = Vector512.FusedMultiplyAdd(w0, h0, a0);
                a1 = Vector512.FusedMultiplyAdd(w1, h0, a1);
                b0 = Vector512.FusedMultiplyAdd(w0, h1, b0);
                b1 = Vector512.FusedMultiplyAdd(w1, h1, b1);
                c0 = Vector512.FusedMultiplyAdd(w0, h2, c0);
                c1 = Vector512.FusedMultiplyAdd(w1, h2, c1);
                d0 = Vector512.FusedMultiplyAdd(w0, h3, d0);
                d1 = Vector512.FusedMultiplyAdd(w1, h3, d1);
            }

            nint at = (nint)o * T.Size;
            T.AddPair(y0 + at, a0, a1);
            T.AddPair(y1 + at, b0, b1);
            T.AddPair(y2 + at, c0, c1);
            T.AddPair(y3 + at, d0, d1);
        }

        return o;
    }

    /// <summary>y[from..outF] += Σ_j h[j] · Bt[j, o], one lane at a time.</summary>
    private static void AddTail(void* bt, bool bf16, int rank, int outF, int from, float* h, byte* y)
    {
        for (int o = from; o < outF; o++)
        {
            float sum = 0;
            for (int j = 0; j < rank; j++)
                sum += h[j] * Weight(bt, bf16, (long)j * outF + o);
            if (bf16)
                ((ushort*)y)[o] = Bf16.FromFloat(BitConverter.UInt32BitsToSingle((uint)((ushort*)y)[o] << 16) + sum);
            else
                ((float*)y)[o] += sum;
        }
    }

    /// <summary>
    /// h_k[j'] for j' = 0..3 (A rows a..a+3, elements of type T) and k = 0..3; h rows are <paramref name="hStride"/> apart.
    /// With <paramref name="prefetchNext"/>, the four A rows after these (the next group's) are prefetched, each line as
    /// the same column of the current rows is read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4<T>(byte* a, int inF, float* x, float* h, int hStride, bool prefetchNext) where T : struct, ITensorElement
    {
        Vector512<float> s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default, s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
        // Row pointers computed once and a native-sized index: the loop body is loads and FMAs, with no per-load
        // address arithmetic competing with the FMAs for the vector ports. 32 elements per pass in pair order (x rows are
        // laid out the same way), one half at a time: 16 accumulators, 4 x vectors and one weight vector stay in
        // registers, and for bf16 each weight vector costs one shift or mask instead of a widening and a shift.
        float* x0p = x, x1p = x + inF, x2p = x1p + inF, x3p = x2p + inF;
        nint rowBytes = (nint)inF * T.Size;
        byte* a0p = a, a1p = a + rowBytes, a2p = a1p + rowBytes, a3p = a2p + rowBytes;
        nint i = 0, end = inF - 32;
        for (; i <= end; i += 32)
        {
            nint at = i * T.Size;
            if (prefetchNext)
            {
                Sse.Prefetch0(a3p + rowBytes + at);
                Sse.Prefetch0(a3p + 2 * rowBytes + at);
                Sse.Prefetch0(a3p + 3 * rowBytes + at);
                Sse.Prefetch0(a3p + 4 * rowBytes + at);
            }

            var x0 = Vector512.Load(x0p + i);
            var x1 = Vector512.Load(x1p + i);
            var x2 = Vector512.Load(x2p + i);
            var x3 = Vector512.Load(x3p + i);
            var w = T.LoadPairFirst(a0p + at);
            s00 = Vector512.FusedMultiplyAdd(w, x0, s00);
            s01 = Vector512.FusedMultiplyAdd(w, x1, s01);
            s02 = Vector512.FusedMultiplyAdd(w, x2, s02);
            s03 = Vector512.FusedMultiplyAdd(w, x3, s03);
            w = T.LoadPairFirst(a1p + at);
            s10 = Vector512.FusedMultiplyAdd(w, x0, s10);
            s11 = Vector512.FusedMultiplyAdd(w, x1, s11);
            s12 = Vector512.FusedMultiplyAdd(w, x2, s12);
            s13 = Vector512.FusedMultiplyAdd(w, x3, s13);
            w = T.LoadPairFirst(a2p + at);
            s20 = Vector512.FusedMultiplyAdd(w, x0, s20);
            s21 = Vector512.FusedMultiplyAdd(w, x1, s21);
            s22 = Vector512.FusedMultiplyAdd(w, x2, s22);
            s23 = Vector512.FusedMultiplyAdd(w, x3, s23);
            w = T.LoadPairFirst(a3p + at);
            s30 = Vector512.FusedMultiplyAdd(w, x0, s30);
            s31 = Vector512.FusedMultiplyAdd(w, x1, s31);
            s32 = Vector512.FusedMultiplyAdd(w, x2, s32);
            s33 = Vector512.FusedMultiplyAdd(w, x3, s33);
            x0 = Vector512.Load(x0p + i + 16);
            x1 = Vector512.Load(x1p + i + 16);
            x2 = Vector512.Load(x2p + i + 16);
            x3 = Vector512.Load(x3p + i + 16);
            w = T.LoadPairSecond(a0p + at);
            s00 = Vector512.FusedMultiplyAdd(w, x0, s00);
            s01 = Vector512.FusedMultiplyAdd(w, x1, s01);
            s02 = Vector512.FusedMultiplyAdd(w, x2, s02);
            s03 = Vector512.FusedMultiplyAdd(w, x3, s03);
            w = T.LoadPairSecond(a1p + at);
            s10 = Vector512.FusedMultiplyAdd(w, x0, s10);
            s11 = Vector512.FusedMultiplyAdd(w, x1, s11);
            s12 = Vector512.FusedMultiplyAdd(w, x2, s12);
            s13 = Vector512.FusedMultiplyAdd(w, x3, s13);
            w = T.LoadPairSecond(a2p + at);
            s20 = Vector512.FusedMultiplyAdd(w, x0, s20);
            s21 = Vector512.FusedMultiplyAdd(w, x1, s21);
            s22 = Vector512.FusedMultiplyAdd(w, x2, s22);
            s23 = Vector512.FusedMultiplyAdd(w, x3, s23);
            w = T.LoadPairSecond(a3p + at);
            s30 = Vector512.FusedMultiplyAdd(w, x0, s30);
            s31 = Vector512.FusedMultiplyAdd(w, x1, s31);
            s32 = Vector512.FusedMultiplyAdd(w, x2, s32);
            s33 = Vector512.FusedMultiplyAdd(w, x3, s33);
        }

        // Summed here, not through an array of the accumulators: taking them into memory made the JIT spill all sixteen
        // to the stack on every iteration of the loop above (4× slower).
        bool bf16 = typeof(T) == typeof(BFloat16Element);
        int from = (int)i;
        h[0 * hStride + 0] = Vector512.Sum(s00);
        h[1 * hStride + 0] = Vector512.Sum(s01);
        h[2 * hStride + 0] = Vector512.Sum(s02);
        h[3 * hStride + 0] = Vector512.Sum(s03);
        h[0 * hStride + 1] = Vector512.Sum(s10);
        h[1 * hStride + 1] = Vector512.Sum(s11);
        h[2 * hStride + 1] = Vector512.Sum(s12);
        h[3 * hStride + 1] = Vector512.Sum(s13);
        h[0 * hStride + 2] = Vector512.Sum(s20);
        h[1 * hStride + 2] = Vector512.Sum(s21);
        h[2 * hStride + 2] = Vector512.Sum(s22);
        h[3 * hStride + 2] = Vector512.Sum(s23);
        h[0 * hStride + 3] = Vector512.Sum(s30);
        h[1 * hStride + 3] = Vector512.Sum(s31);
        h[2 * hStride + 3] = Vector512.Sum(s32);
        h[3 * hStride + 3] = Vector512.Sum(s33);
        // The tails only after every accumulator is consumed: a call with accumulators still live made the JIT spill them
        // inside the loop above.
        if (from < inF)
            for (int r = 0; r < 4; r++)
                for (int k = 0; k < 4; k++)
                    h[k * hStride + r] += Tail(a, bf16, inF, from, r, x, k);
    }

    /// <summary>A row r · x row k over the elements [from, inF) the vector loop left.</summary>
    private static float Tail(void* a, bool bf16, int inF, int from, int r, float* x, int k)
    {
        float sum = 0;
        for (int i = from; i < inF; i++)
            sum += Weight(a, bf16, (long)r * inF + i) * x[k * inF + i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Weight(void* w, bool bf16, long index) =>
        bf16 ? BitConverter.UInt32BitsToSingle((uint)((ushort*)w)[index] << 16) : ((float*)w)[index];
}
