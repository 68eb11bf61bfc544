using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// The portable twin of <see cref="GemvNative.WideF32"/> / <see cref="GemvNative.WideBf16"/> for CPUs without AVX-512:
/// a weight times a few float32 rows, transposed, in AVX2 fused multiply-adds.
/// <code>
/// Multiply(x [M, K] f32, W [N, K] f32|bf16, y [N, ldy] f32) : y[n, m] = Σ_k x[m, k]·W[n, k]   (any M ≥ 1)
/// </code>
/// x is packed once as xᵀ <c>[K, C]</c> with C = M rounded up to <see cref="Columns"/> (zero columns beyond M); each
/// block of <see cref="BlockRows"/> weight rows then runs k by k: one broadcast weight value times two 8-lane xᵀ
/// vectors, so twelve accumulators stay in registers and every weight value is read from memory once per column block.
/// bf16 weights are widened to float32 a <see cref="Chunk"/> of k at a time into a per-thread buffer. Sums run in k order
/// in float32, one fused multiply-add per term, so a result depends on neither the block nor the thread that made it.
/// </summary>
internal static unsafe class SkinnyProductManaged
{
    /// <summary>Output columns (x rows) one pass over a block's weights fills: two 8-lane vectors.</summary>
    public const int Columns = 16;

    /// <summary>Weight rows one pass broadcasts from: 6 × 2 accumulators + 2 xᵀ vectors + 1 broadcast fit AVX2's 16 registers.</summary>
    private const int BlockRows = 6;

    /// <summary>k values per pass: a bf16 block widened to float32 (6 × 256 × 4 bytes) stays in L1.</summary>
    private const int Chunk = 256;

    /// <summary>True where the kernel runs (AVX2 with FMA).</summary>
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>y[n, m] = Σ_k x[m, k]·W[n, k] for <paramref name="rows"/> rows of x; columns of y beyond them are left as they were.</summary>
    /// <param name="x">float32 <c>[rows, k]</c>, row stride <paramref name="ldx"/>.</param>
    /// <param name="rows">Rows of x (≥ 1): columns of y.</param>
    /// <param name="ldx">Row stride of x, in floats.</param>
    /// <param name="k">The inner dimension.</param>
    /// <param name="w">The weight <c>[n, k]</c>, contiguous, float32 or (with <paramref name="bf16"/>) bfloat16.</param>
    /// <param name="bf16">True when <paramref name="w"/> holds bfloat16.</param>
    /// <param name="n">Rows of the weight: rows of y.</param>
    /// <param name="y">float32 <c>[n, ldy]</c>.</param>
    /// <param name="ldy">Row stride of y, in floats (≥ rows).</param>
    public static void Multiply(float* x, int rows, long ldx, int k, void* w, bool bf16, int n, float* y, long ldy)
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("SkinnyProductManaged needs AVX2 and FMA");
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(ldy, rows);
        int blocks = (rows + Columns - 1) / Columns;
        int length = k * blocks * Columns;
        // Pooled: a slot fill runs this for every module, and fresh arrays of this size would churn the large-object heap.
        float[] packed = System.Buffers.ArrayPool<float>.Shared.Rent(length);
        Array.Clear(packed, 0, length);
        try
        {
            fixed (float* xt = packed)
            {
                for (int b = 0; b < blocks; b++)
                    for (int c = 0; c < Columns && b * Columns + c < rows; c++)
                    {
                        float* row = x + (b * Columns + c) * ldx;
                        float* column = xt + (long)b * k * Columns + c;
                        for (int i = 0; i < k; i++)
                            column[(long)i * Columns] = row[i];
                    }

                int rowBlocks = (n + BlockRows - 1) / BlockRows;
                int parts = Math.Clamp(rowBlocks / 8, 1, OpenMpTeam.Threads * 4);
                OpenMpTeam.For(parts, RangeParts<RowBlocksCall>.Even(new RowBlocksCall(xt, rows, k, (byte*)w, bf16, n, blocks, y, ldy), rowBlocks, parts));
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(packed);
        }
    }

    /// <summary>Blocks [from, to) of <see cref="BlockRows"/> weight rows against every 16-column block of xᵀ.</summary>
    private readonly struct RowBlocksCall(float* xt, int rows, int k, byte* w, bool bf16, int n, int blocks, float* y, long ldy) : IParallelRange
    {
        public void Run(long from, long to)
        {
            float* widened = stackalloc float[BlockRows * Chunk];
            float* sums = stackalloc float[BlockRows * Columns];
            for (int rb = (int)from; rb < to; rb++)
            {
                int first = rb * BlockRows, count = Math.Min(BlockRows, n - first);
                for (int b = 0; b < blocks; b++)
                    Block(xt + (long)b * k * Columns, k, w, bf16, first, count, widened, sums, y + (long)first * ldy + b * Columns, ldy,
                        Math.Min(Columns, rows - b * Columns));
            }
        }
    }

    /// <summary>One block of <paramref name="count"/> ≤ 6 weight rows times one 16-column block of xᵀ, into y.</summary>
    // Slot fills are rare: without this the first fills after start run the loops unoptimised.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(float* xt, int k, byte* w, bool bf16, int first, int count, float* widened, float* sums, float* y, long ldy, int columns)
    {
        new Span<float>(sums, BlockRows * Columns).Clear();
        int size = bf16 ? 2 : 4;
        for (int k0 = 0; k0 < k; k0 += Chunk)
        {
            int length = Math.Min(Chunk, k - k0);
            float* rows = widened;
            long stride = Chunk;
            if (bf16)
                for (int r = 0; r < count; r++)
                    Widen((ushort*)(w + ((long)(first + r) * k + k0) * size), widened + r * Chunk, length);
            else
            {
                rows = (float*)w + (long)first * k + k0;
                stride = k;
            }

            if (count == BlockRows)
                SixRows(xt + (long)k0 * Columns, rows, stride, length, sums);
            else
                for (int r = 0; r < count; r++)
                    OneRow(xt + (long)k0 * Columns, rows + r * stride, length, sums + r * Columns);
        }

        for (int r = 0; r < count; r++)
            new ReadOnlySpan<float>(sums + r * Columns, columns).CopyTo(new Span<float>(y + r * ldy, columns));
    }

    /// <summary>sums[r, :] += Σ_i w[r, i]·xᵀ[i, :] for six rows (row stride <paramref name="stride"/>), twelve accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SixRows(float* xt, float* w, long stride, int length, float* sums)
    {
        var a0 = Vector256.Load(sums); var b0 = Vector256.Load(sums + 8);
        var a1 = Vector256.Load(sums + 16); var b1 = Vector256.Load(sums + 24);
        var a2 = Vector256.Load(sums + 32); var b2 = Vector256.Load(sums + 40);
        var a3 = Vector256.Load(sums + 48); var b3 = Vector256.Load(sums + 56);
        var a4 = Vector256.Load(sums + 64); var b4 = Vector256.Load(sums + 72);
        var a5 = Vector256.Load(sums + 80); var b5 = Vector256.Load(sums + 88);
        float* w0 = w, w1 = w + stride, w2 = w + 2 * stride, w3 = w + 3 * stride, w4 = w + 4 * stride, w5 = w + 5 * stride;
        for (int i = 0; i < length; i++)
        {
            var lo = Vector256.Load(xt + i * Columns);
            var hi = Vector256.Load(xt + i * Columns + 8);
            var v = Vector256.Create(w0[i]);
            a0 = Fma.MultiplyAdd(v, lo, a0); b0 = Fma.MultiplyAdd(v, hi, b0);
            v = Vector256.Create(w1[i]);
            a1 = Fma.MultiplyAdd(v, lo, a1); b1 = Fma.MultiplyAdd(v, hi, b1);
            v = Vector256.Create(w2[i]);
            a2 = Fma.MultiplyAdd(v, lo, a2); b2 = Fma.MultiplyAdd(v, hi, b2);
            v = Vector256.Create(w3[i]);
            a3 = Fma.MultiplyAdd(v, lo, a3); b3 = Fma.MultiplyAdd(v, hi, b3);
            v = Vector256.Create(w4[i]);
            a4 = Fma.MultiplyAdd(v, lo, a4); b4 = Fma.MultiplyAdd(v, hi, b4);
            v = Vector256.Create(w5[i]);
            a5 = Fma.MultiplyAdd(v, lo, a5); b5 = Fma.MultiplyAdd(v, hi, b5);
        }

        a0.Store(sums); b0.Store(sums + 8);
        a1.Store(sums + 16); b1.Store(sums + 24);
        a2.Store(sums + 32); b2.Store(sums + 40);
        a3.Store(sums + 48); b3.Store(sums + 56);
        a4.Store(sums + 64); b4.Store(sums + 72);
        a5.Store(sums + 80); b5.Store(sums + 88);
    }

    /// <summary>sums[:] += Σ_i w[i]·xᵀ[i, :] for the rows of a block's tail; the same terms in the same order as <see cref="SixRows"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OneRow(float* xt, float* w, int length, float* sums)
    {
        var a = Vector256.Load(sums);
        var b = Vector256.Load(sums + 8);
        for (int i = 0; i < length; i++)
        {
            var v = Vector256.Create(w[i]);
            a = Fma.MultiplyAdd(v, Vector256.Load(xt + i * Columns), a);
            b = Fma.MultiplyAdd(v, Vector256.Load(xt + i * Columns + 8), b);
        }

        a.Store(sums);
        b.Store(sums + 8);
    }

    /// <summary>bfloat16 → float32 (exact: the bits shifted into the high half).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Widen(ushort* source, float* destination, int length)
    {
        int i = 0;
        for (; i + 8 <= length; i += 8)
            Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(Sse2.LoadVector128(source + i)), 16).AsSingle().Store(destination + i);
        for (; i < length; i++)
            destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
    }
}
