using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Engine.Kernels;

/// <summary>
/// The score pass of <see cref="PagedDecodeAttention"/> for head sizes that are a multiple of 32, with q and K both in
/// pair order (<see cref="ITensorElement"/>): for one sequence and KV head,
/// <code>
/// scores[gi·n + j] = Σ_c q[gi, c] · K[row j, c]        gi &lt; G (the KV head's query heads, q pre-scaled), j &lt; n
/// </code>
/// Why a kernel of its own: each score is a 16-lane product that must end as one float, and reducing every product on
/// its own (a horizontal sum, then a read-modify-write of the score) cost more than the products. Here 4 query heads ×
/// 4 positions are reduced together by a transposing tree (<see cref="Pairs"/>, <see cref="Quads"/>,
/// <see cref="Halves"/>, <see cref="Lanes"/>): 45 shuffles and adds for 16 scores instead of 16 horizontal sums, and
/// the result is a vector whose 128-bit chunk h holds head h's 4 scores, stored as 4 floats per head.
/// </summary>
internal static unsafe class DecodeAttentionScores
{
    /// <summary>True when <see cref="Compute{T}"/> can run: <see cref="VectorExp.IsSupported"/> and D a multiple of 32 (whole pairs).</summary>
    public static bool Supports(int headDim) => VectorExp.IsSupported && headDim % 32 == 0;

    /// <param name="q">G × D floats, each head's D in pair order, already scaled by 1/√D.</param>
    /// <param name="kHead">The KV head's key cache, rows of D elements.</param>
    /// <param name="vHead">The KV head's value cache: its rows are prefetched for the pass that follows.</param>
    /// <param name="rows">The sequence's physical rows; the first <paramref name="n"/> are read.</param>
    /// <param name="n">Context length.</param>
    /// <param name="g">Query heads per KV head (G).</param>
    /// <param name="d">Head size (D).</param>
    /// <param name="scores">G × n floats, written (not accumulated).</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Compute<T>(float* q, byte* kHead, byte* vHead, long* rows, int n, int g, int d, float* scores) where T : struct, ITensorElement
    {
        nint rowBytes = (nint)d * T.Size;
        // The transposing tree needs AVX-512's cross-lane shuffles; on AVX2 each score takes its own horizontal sum.
        int quadHeads = Avx512F.IsSupported ? g / 4 * 4 : 0, j = 0;
        for (int p = 0; p < Math.Min(PagedDecodeAttention.PrefetchRows, n); p++)
            PagedDecodeAttention.Prefetch(kHead, vHead, rows[p], (int)rowBytes);
        if (quadHeads > 0)
        {
            for (; j + 4 <= n; j += 4)
            {
                for (int p = j + PagedDecodeAttention.PrefetchRows; p < Math.Min(j + 4 + PagedDecodeAttention.PrefetchRows, n); p++)
                    PagedDecodeAttention.Prefetch(kHead, vHead, rows[p], (int)rowBytes);
                byte* k0 = kHead + rows[j] * rowBytes, k1 = kHead + rows[j + 1] * rowBytes;
                byte* k2 = kHead + rows[j + 2] * rowBytes, k3 = kHead + rows[j + 3] * rowBytes;
                for (int gi = 0; gi < quadHeads; gi += 4)
                {
                    float* qs = q + gi * d;
                    var s = Lanes(Halves(FourHeads<T>(k0, qs, d), FourHeads<T>(k1, qs, d)), Halves(FourHeads<T>(k2, qs, d), FourHeads<T>(k3, qs, d)));
                    float* o = scores + gi * n + j;
                    s.GetLower().GetLower().Store(o);
                    s.GetLower().GetUpper().Store(o + n);
                    s.GetUpper().GetLower().Store(o + 2 * n);
                    s.GetUpper().GetUpper().Store(o + 3 * n);
                }
            }
        }

        for (int gi = 0; gi < g; gi++)
            for (int jj = gi < quadHeads ? j : 0; jj < n; jj++)
                scores[gi * n + jj] = Vector512.Sum(Dot<T>(kHead + rows[jj] * rowBytes, q + gi * d, d));
    }

    /// <summary>
    /// The products of one K row with 4 consecutive query heads, partly reduced: 128-bit chunk h holds 4 partial sums
    /// of head h's score.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> FourHeads<T>(byte* k, float* q, int d) where T : struct, ITensorElement =>
        Quads(Pairs(Dot<T>(k, q, d), Dot<T>(k, q + d, d)), Pairs(Dot<T>(k, q + 2 * d, d), Dot<T>(k, q + 3 * d, d)));

    /// <summary>16 lanes whose sum is K row · q (both in pair order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot<T>(byte* k, float* q, int d) where T : struct, ITensorElement
    {
        var first = T.LoadPairFirst(k) * Vector512.Load(q);
        var second = T.LoadPairSecond(k) * Vector512.Load(q + 16);
        for (int c = 32; c < d; c += 32)
        {
            first = Vector512.FusedMultiplyAdd(T.LoadPairFirst(k + (nint)c * T.Size), Vector512.Load(q + c), first);
            second = Vector512.FusedMultiplyAdd(T.LoadPairSecond(k + (nint)c * T.Size), Vector512.Load(q + c + 16), second);
        }

        return first + second;
    }

    /// <summary>(a, b) → [a₀+a₂, a₁+a₃, b₀+b₂, b₁+b₃] (128-bit chunks): a's sum in the lower half, b's in the upper.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Pairs(Vector512<float> a, Vector512<float> b) =>
        Avx512F.Shuffle4x128(a, b, 0b01_00_01_00) + Avx512F.Shuffle4x128(a, b, 0b11_10_11_10);

    /// <summary>Two <see cref="Pairs"/> results (a|b, c|d) → one chunk each for a, b, c, d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Quads(Vector512<float> ab, Vector512<float> cd) =>
        Avx512F.Shuffle4x128(ab, cd, 0b10_00_10_00) + Avx512F.Shuffle4x128(ab, cd, 0b11_01_11_01);

    /// <summary>Per 128-bit chunk: e's 4 partial sums → 2 (lanes 0–1), f's → 2 (lanes 2–3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves(Vector512<float> e, Vector512<float> f) =>
        Avx512F.UnpackLow(e.AsDouble(), f.AsDouble()).AsSingle() + Avx512F.UnpackHigh(e.AsDouble(), f.AsDouble()).AsSingle();

    /// <summary>Per 128-bit chunk: [x₀+x₁, x₂+x₃, y₀+y₁, y₂+y₃] — the full sums, x's two then y's two.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Lanes(Vector512<float> x, Vector512<float> y) =>
        Avx512F.Shuffle(x, y, 0b10_00_10_00) + Avx512F.Shuffle(x, y, 0b11_01_11_01);

    /// <summary>s = cap · tanh(s / cap) in place over <paramref name="count"/> scores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softcap(float* scores, int count, float cap)
    {
        int j = 0;
        var caps = Vector512.Create(cap);
        for (; j + Vector512<float>.Count <= count; j += Vector512<float>.Count)
            (caps * VectorExp.Tanh(Vector512.Load(scores + j) / caps)).Store(scores + j);
        for (; j < count; j++)
            scores[j] = cap * MathF.Tanh(scores[j] / cap);
    }
}
