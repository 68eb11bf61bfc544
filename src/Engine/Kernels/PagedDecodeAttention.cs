using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Tensor = TorchSharp.torch.Tensor;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// Grouped-query decode attention read straight from the paged KV cache in CPU memory: no gathered K/V copies, no mask
/// tensor, one pass per (sequence, KV head) on libtorch's OpenMP team.
/// <para>
/// Why: at decode each sequence contributes one query row, so libtorch's fused attention runs over tiny per-head
/// matrices after two index_select gathers and (for mixed lengths) a mask; on the bench preset in bfloat16 that came to
/// about 0.4× the step's projection GEMMs. Here the work is the bytes of the K/V prefix and a few FMAs per byte.
/// </para>
/// <code>
/// for decode row b (context length n_b), KV head h, its query heads i = h·G + g (g &lt; G):
///   s[g, j]   = (q[b, i] · K[h, row_b(j)]) / √D                 j &lt; n_b      (float32)
///   s[g, j]   = cap · tanh(s[g, j] / cap)                        with a soft cap (Gemma 2)
///   p[g, :]   = exp(s[g, :] − max s[g, :]) / Σ exp(...)                      (float32)
///   out[b, i] = Σ_j p[g, j] · V[h, row_b(j)]                                 (float32, rounded once to the dtype)
/// </code>
/// Shapes: q <c>[B, Hq, D]</c> contiguous; K, V the layer's cache <c>[Hkv, R, D]</c> contiguous; row_b(j) =
/// rows[b·stride + j]; output <c>[B, Hq·D]</c> in q's dtype. Invariants: Hq = G·Hkv, D a multiple of 16, every row &lt; R.
/// </summary>
public static unsafe class PagedDecodeAttention
{
    private const int Lanes = 16;

    [ThreadStatic] private static float[]? _scratch;

    /// <summary>
    /// True when <see cref="Apply(Tensor, Tensor, Tensor, ReadOnlySpan{long}, int, ReadOnlySpan{int}, float, Tensor)"/> can run these tensors: CPU memory, float32 or bfloat16, <see cref="VectorExp.IsSupported"/>, D % 16 = 0, and q outside
    /// autograd (the kernel records no graph).
    /// </summary>
    public static bool Supports(Tensor q, Tensor keys) =>
        VectorExp.IsSupported && !q.requires_grad && q.device_type == DeviceType.CPU && keys.device_type == DeviceType.CPU
        && q.dtype == keys.dtype && q.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && q.size(-1) % Lanes == 0 && keys.is_contiguous();

    /// <param name="q">[B, Hq, D]; made contiguous if it is not.</param>
    /// <param name="keys">The layer's key cache [Hkv, R, D].</param>
    /// <param name="values">The layer's value cache [Hkv, R, D].</param>
    /// <param name="rows">B × <paramref name="stride"/> physical rows; the first lengths[b] of row b's are read.</param>
    /// <param name="stride">Entries per sequence in <paramref name="rows"/>.</param>
    /// <param name="lengths">Context length per sequence, each in [1, stride].</param>
    /// <param name="softcap">The scores' soft cap; 0: none.</param>
    /// <param name="sinks">Each query head's sink logit, <c>[Hq]</c> float32 (gpt-oss), or null: a last softmax column, dropped after it.</param>
    /// <returns>[B, Hq·D] in q's dtype.</returns>
    public static Tensor Apply(Tensor q, Tensor keys, Tensor values, ReadOnlySpan<long> rows, int stride, ReadOnlySpan<int> lengths, float softcap = 0,
        Tensor? sinks = null)
    {
        int b = lengths.Length, hq = (int)q.size(1), d = (int)q.size(2), hkv = (int)keys.size(0);
        long r = keys.size(1);
        if (q.size(0) != b || hq % hkv != 0 || !values.is_contiguous() || values.dim() != 3 || values.size(0) != hkv || values.size(1) != r
            || values.size(2) != d || keys.size(2) != d
            || rows.Length < (long)b * stride
            || sinks is not null && (sinks.dtype != ScalarType.Float32 || sinks.NumberOfElements != hq || !sinks.is_contiguous() || sinks.device_type != DeviceType.CPU))
            throw new ArgumentException($"decode attention: q {Shape(q)}, keys {Shape(keys)}, values {Shape(values)}, {b} sequences × {stride} rows given {rows.Length}");

        using var qc = q.contiguous();
        var output = empty([b, (long)hq * d], q.dtype, q.device);
        fixed (byte* qp = qc.bytes)
        fixed (byte* kp = keys.bytes)
        fixed (byte* vp = values.bytes)
        fixed (byte* op = output.bytes)
            Apply(qp, (long)hq * d, kp, vp, op, q.dtype == ScalarType.BFloat16, rows, stride, lengths, hq, hkv, d, r, softcap,
                sinks is null ? null : (float*)Runtime.CpuTensorMemory.Address(sinks));
        return output;
    }

    /// <summary>
    /// <see cref="Apply(Tensor, Tensor, Tensor, ReadOnlySpan{long}, int, ReadOnlySpan{int}, float, Tensor)"/> on raw memory, validated by the caller (no libtorch
    /// call): sequence b's query heads are the Hq·D elements at <paramref name="q"/> + b·<paramref name="qRowStride"/> (a
    /// fused q|k|v row, say); keys and values <c>[Hkv, cacheRows, D]</c>; <paramref name="output"/> <c>[B, Hq·D]</c>.
    /// </summary>
    public static void Apply(byte* q, long qRowStride, byte* keys, byte* values, byte* output, bool bf16, ReadOnlySpan<long> rows, int stride,
        ReadOnlySpan<int> lengths, int hq, int hkv, int d, long cacheRows, float softcap = 0, float* sinks = null)
    {
        int b = lengths.Length, maxLength = 0;
        long total = 0;
        foreach (int n in lengths)
        {
            if (n < 1 || n > stride)
                throw new ArgumentException($"decode attention: context length {n} outside [1, {stride}]");
            maxLength = Math.Max(maxLength, n);
            total += n;
        }

        if (rows.Length < (long)b * stride)
            throw new ArgumentException($"decode attention: {b} sequences × {stride} rows given {rows.Length}");
        fixed (long* rowsAt = rows)
        fixed (int* lengthsAt = lengths)
        {
            var job = new Job((nint)q, qRowStride, (nint)keys, (nint)values, (nint)output, bf16, (nint)rowsAt, stride, (nint)lengthsAt, maxLength,
                hq / hkv, hkv, d, cacheRows, 1f / MathF.Sqrt(d), softcap, (nint)sinks);
            int parts = b * hkv;
            if (parts == 1 || OpenMpTeam.Threads == 1)
            {
                job.Run(0, parts);
                return;
            }

            // Contiguous ranges of about equal context: the cost of a part is its sequence's length.
            int chunks = Math.Min(OpenMpTeam.Threads, parts);
            int* bounds = stackalloc int[chunks + 1];
            new Span<int>(bounds, chunks + 1).Clear();
            total *= hkv;
            long cost = 0;
            for (int p = 0, k = 1; p < parts && k < chunks; p++)
            {
                cost += lengths[p / hkv];
                if (cost * chunks >= total * k)
                    bounds[k++] = p + 1;
            }

            bounds[chunks] = parts;
            for (int k = 1; k < chunks; k++)
                bounds[k] = Math.Max(bounds[k], bounds[k - 1]);
            OpenMpTeam.For(chunks, new Chunks(job, bounds));
        }
    }

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";

    /// <summary>One call's addresses and sizes: Rows <c>long[B·Stride]</c> and Lengths <c>int[B]</c> pinned by the caller.</summary>
    private readonly record struct Job(nint Q, long QRowStride, nint K, nint V, nint Out, bool Bf16, nint Rows, int Stride, nint Lengths, int MaxLength,
        int Group, int KvHeads, int HeadDim, long CacheRows, float Scale, float Softcap, nint Sinks)
    {
        /// <summary>Parts [from, to); part p = (sequence p / Hkv, KV head p % Hkv).</summary>
        public void Run(int from, int to)
        {
            if (Bf16)
                Run<BFloat16Element>(this, from, to);
            else
                Run<Float32Element>(this, from, to);
        }
    }

    /// <summary>Chunk k is parts [bounds[k], bounds[k + 1]).</summary>
    private readonly struct Chunks(Job job, int* bounds) : IParallelPart
    {
        public void Run(int chunk) => job.Run(bounds[chunk], bounds[chunk + 1]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<T>(in Job job, int from, int to) where T : struct, ITensorElement
    {
        int g = job.Group, d = job.HeadDim, maxLength = job.MaxLength, kvHeads = job.KvHeads;
        bool pairs = DecodeAttentionScores.Supports(d);
        int need = 2 * g * d + g * maxLength + Runtime.CacheLines.Slack<float>();
        nint headBytes = (nint)(job.CacheRows * d * T.Size);
        long* rows = (long*)job.Rows;
        int* lengths = (int*)job.Lengths;
        fixed (float* start = Runtime.ScratchArrays.Fit(ref _scratch, need))
        {
            float* scratch = Runtime.CacheLines.Align(start);
            float* qf = scratch, acc = qf + g * d, scores = acc + g * d;
            for (int p = from; p < to; p++)
            {
                int b = p / kvHeads, h = p % kvHeads, n = lengths[b];
                long headOffset = ((long)b * kvHeads * g + (long)h * g) * d;   // out[b, h·G·D]
                byte* q = (byte*)job.Q + (b * job.QRowStride + (long)h * g * d) * T.Size;
                long* seqRows = rows + (long)b * job.Stride;
                byte* kHead = (byte*)job.K + h * headBytes;
                byte* vHead = (byte*)job.V + h * headBytes;
                if (pairs)
                {
                    T.ToPairOrder(q, g * d, qf);
                    for (int i = 0; i < g * d; i += Lanes)
                        (Vector512.Load(qf + i) * job.Scale).Store(qf + i);
                    DecodeAttentionScores.Compute<T>(qf, kHead, vHead, seqRows, n, g, d, scores);
                }
                else
                {
                    for (int i = 0; i < g * d; i += Lanes)
                        (T.Load16(q + (nint)i * T.Size) * job.Scale).Store(qf + i);
                    Scores<T>(qf, kHead, vHead, seqRows, n, g, d, scores);
                }

                if (job.Softcap > 0)
                    DecodeAttentionScores.Softcap(scores, g * n, job.Softcap);
                for (int gi = 0; gi < g; gi++)
                    Softmax(scores + gi * n, n, job.Sinks == 0 ? float.NegativeInfinity : ((float*)job.Sinks)[h * g + gi]);

                int first = 0;
                if (d % SliceWidth == 0)
                    for (; first + 4 <= g; first += 4)
                        WeightedValues4<T>(scores + first * n, vHead, seqRows, n, d, acc + first * d);
                for (int gi = first; gi < g; gi++)
                    WeightedValues<T>(scores + gi * n, vHead, seqRows, n, d, acc + gi * d);
                Store(acc, (byte*)job.Out + headOffset * T.Size, job.Bf16, g * d);
            }
        }
    }

    /// <summary>
    /// p = exp(s − m) / (Σ exp(s − m) + exp(sink − m)), m = max(max s, sink), in place over n scores; a sink of −∞ (none)
    /// adds nothing (<see cref="Supports"/> implies <see cref="VectorExp.IsSupported"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softmax(float* scores, int n, float sink)
    {
        var s = new Span<float>(scores, n);
        float max = MathF.Max(TensorPrimitives.Max(s), sink);
        var maxes = Vector512.Create(max);
        var sums = Vector512<float>.Zero;
        int whole = n & ~(Lanes - 1);
        // The tail as the last 16 scores, taken before the loop changes the ones it shares with the last whole vector;
        // stored after it (the shared lanes get the same values again) and summed over its own lanes only.
        var tail = n > whole && n >= Lanes ? VectorExp.Exp(Vector512.Load(scores + n - Lanes) - maxes) : default;
        for (int j = 0; j < whole; j += Lanes)
        {
            var e = VectorExp.Exp(Vector512.Load(scores + j) - maxes);
            e.Store(scores + j);
            sums += e;
        }

        float sum = Vector512.Sum(sums) + (float.IsNegativeInfinity(sink) ? 0 : MathF.Exp(sink - max));
        if (n > whole && n >= Lanes)
        {
            tail.Store(scores + n - Lanes);
            var own = Vector512.GreaterThanOrEqual(Vector512<int>.Indices, Vector512.Create(Lanes - (n - whole))).AsSingle();
            sum += Vector512.Sum(tail & own);
        }
        else
        {
            for (int j = whole; j < n; j++)
            {
                scores[j] = MathF.Exp(scores[j] - max);
                sum += scores[j];
            }
        }

        TensorPrimitives.Multiply(s, 1f / sum, s);
    }

    /// <summary>
    /// scores[gi·n + j] = q_gi · K[row j] for the G query heads (q pre-scaled): each K row is read from the cache once and
    /// stays in registers for the G heads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<T>(float* qf, byte* kHead, byte* vHead, long* rows, int n, int g, int d, float* scores) where T : struct, ITensorElement
    {
        nint rowBytes = (nint)d * T.Size;
        for (int j = 0; j < Math.Min(PrefetchRows, n); j++)
            Prefetch(kHead, vHead, rows[j], (int)rowBytes);
        new Span<float>(scores, g * n).Clear();
        for (int slice = 0; slice < d; slice += SliceWidth)
        {
            int width = Math.Min(SliceWidth, d - slice);
            byte* kSlice = kHead + (nint)slice * T.Size;
            float* qSlice = qf + slice;
            for (int j = 0; j < n; j++)
            {
                if (slice == 0 && j + PrefetchRows < n)
                    Prefetch(kHead, vHead, rows[j + PrefetchRows], (int)rowBytes);
                byte* k = kSlice + (nint)rows[j] * rowBytes;
                float* score = scores + j;
                if (width == SliceWidth)
                {
                    var k0 = T.Load16(k);
                    var k1 = T.Load16(k + Lanes * T.Size);
                    var k2 = T.Load16(k + 2 * Lanes * T.Size);
                    var k3 = T.Load16(k + 3 * Lanes * T.Size);
                    float* qs = qSlice;
                    for (int gi = 0; gi < g; gi++, qs += d, score += n)
                    {
                        var sum = Vector512.FusedMultiplyAdd(k1, Vector512.Load(qs + Lanes), k0 * Vector512.Load(qs))
                            + Vector512.FusedMultiplyAdd(k3, Vector512.Load(qs + 3 * Lanes), k2 * Vector512.Load(qs + 2 * Lanes));
                        *score += Vector512.Sum(sum);
                    }
                }
                else
                {
                    for (int gi = 0; gi < g; gi++, score += n)
                    {
                        var sum = Vector512<float>.Zero;
                        for (int c = 0; c < width; c += Lanes)
                            sum = Vector512.FusedMultiplyAdd(T.Load16(k + (nint)c * T.Size), Vector512.Load(qSlice + gi * d + c), sum);
                        *score += Vector512.Sum(sum);
                    }
                }
            }
        }
    }

    /// <summary>
    /// out[gi] = Σ_j p[gi, j] · V[row j] for four query heads at once, a 64-wide slice of D at a time: each V slice is
    /// loaded once for the four heads, whose 16 accumulators stay in registers across all j. D a multiple of 64.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedValues4<T>(float* p, byte* vHead, long* rows, int n, int d, float* o) where T : struct, ITensorElement
    {
        nint rowBytes = (nint)d * T.Size;
        float* p1 = p + n, p2 = p1 + n, p3 = p2 + n;
        for (int slice = 0; slice < d; slice += SliceWidth)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default,
                c0 = default, c1 = default, c2 = default, c3 = default, e0 = default, e1 = default, e2 = default, e3 = default;
            byte* vSlice = vHead + (nint)slice * T.Size;
            for (int j = 0; j < n; j++)
            {
                byte* v = vSlice + (nint)rows[j] * rowBytes;
                var v0 = T.Load16(v);
                var v1 = T.Load16(v + Lanes * T.Size);
                var v2 = T.Load16(v + 2 * Lanes * T.Size);
                var v3 = T.Load16(v + 3 * Lanes * T.Size);
                var w = Vector512.Create(p[j]);
                a0 = Vector512.FusedMultiplyAdd(v0, w, a0);
                a1 = Vector512.FusedMultiplyAdd(v1, w, a1);
                a2 = Vector512.FusedMultiplyAdd(v2, w, a2);
                a3 = Vector512.FusedMultiplyAdd(v3, w, a3);
                w = Vector512.Create(p1[j]);
                b0 = Vector512.FusedMultiplyAdd(v0, w, b0);
                b1 = Vector512.FusedMultiplyAdd(v1, w, b1);
                b2 = Vector512.FusedMultiplyAdd(v2, w, b2);
                b3 = Vector512.FusedMultiplyAdd(v3, w, b3);
                w = Vector512.Create(p2[j]);
                c0 = Vector512.FusedMultiplyAdd(v0, w, c0);
                c1 = Vector512.FusedMultiplyAdd(v1, w, c1);
                c2 = Vector512.FusedMultiplyAdd(v2, w, c2);
                c3 = Vector512.FusedMultiplyAdd(v3, w, c3);
                w = Vector512.Create(p3[j]);
                e0 = Vector512.FusedMultiplyAdd(v0, w, e0);
                e1 = Vector512.FusedMultiplyAdd(v1, w, e1);
                e2 = Vector512.FusedMultiplyAdd(v2, w, e2);
                e3 = Vector512.FusedMultiplyAdd(v3, w, e3);
            }

            float* os = o + slice;
            a0.Store(os);
            a1.Store(os + Lanes);
            a2.Store(os + 2 * Lanes);
            a3.Store(os + 3 * Lanes);
            os += d;
            b0.Store(os);
            b1.Store(os + Lanes);
            b2.Store(os + 2 * Lanes);
            b3.Store(os + 3 * Lanes);
            os += d;
            c0.Store(os);
            c1.Store(os + Lanes);
            c2.Store(os + 2 * Lanes);
            c3.Store(os + 3 * Lanes);
            os += d;
            e0.Store(os);
            e1.Store(os + Lanes);
            e2.Store(os + 2 * Lanes);
            e3.Store(os + 3 * Lanes);
        }
    }

    /// <summary>out = Σ_j p[j] · V[row j] for one query head, 16 lanes of D at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedValues<T>(float* p, byte* vHead, long* rows, int n, int d, float* o) where T : struct, ITensorElement
    {
        nint rowBytes = (nint)d * T.Size;
        for (int c = 0; c < d; c += Lanes)
        {
            var a = Vector512<float>.Zero;
            byte* vColumn = vHead + (nint)c * T.Size;
            for (int j = 0; j < n; j++)
                a = Vector512.FusedMultiplyAdd(T.Load16(vColumn + (nint)rows[j] * rowBytes), Vector512.Create(p[j]), a);
            a.Store(o + c);
        }
    }

    /// <summary>
    /// How far ahead the K loop asks for rows. A sequence's positions are scattered over 16-row blocks of the cache, too
    /// short a run for the hardware prefetcher to get going, so without this every block starts with a stall.
    /// </summary>
    internal const int PrefetchRows = 8;

    /// <summary>Requests K row <paramref name="row"/> into L1 and the same V row into L2 (the V pass follows the K pass).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Prefetch(byte* kHead, byte* vHead, long row, int rowBytes)
    {
        if (!Sse.IsSupported)
            return;
        byte* k = kHead + row * rowBytes, v = vHead + row * rowBytes;
        for (int line = 0; line < rowBytes; line += 64)
        {
            Sse.Prefetch0(k + line);
            Sse.Prefetch1(v + line);
        }
    }

    /// <summary>Elements of D handled with their accumulators in registers: 4 vectors of 16.</summary>
    private const int SliceWidth = 4 * Lanes;

    private static void Store(float* source, byte* destination, bool bf16, int count)
    {
        if (bf16)
            Bf16.FromFloat(new ReadOnlySpan<float>(source, count), new Span<ushort>(destination, count));
        else
            Buffer.MemoryCopy(source, destination, count * 4L, count * 4L);
    }
}
