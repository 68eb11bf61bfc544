using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Tensor = TorchSharp.torch.Tensor;
using Serving.Contracts.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// The layer's element-wise parts, each fused into one pass over CPU memory: RMSNorm, the gated activation and RoPE replace chains of
/// 3–8 libtorch ops (each a dispatch, an allocation and a trip through memory). At decode those chains cost about a
/// third as much as the projection GEMMs in bfloat16. Every intermediate a bf16 op chain would round is rounded here too
/// (<see cref="Bf16.Round(Span{float})"/>), so the results are the op chains' own up to float32 summation order.
/// Tensors: CPU, float32 or bfloat16, contiguous (<see cref="Supports"/>); other tensors take the libtorch ops.
/// </summary>
internal static unsafe class CpuElementwiseKernels
{
    /// <summary>Below this many elements a call stays on the calling thread: an OpenMP region costs more than it saves.</summary>
    private const long ParallelElements = 1 << 16;

    /// <summary>
    /// The same inside a held region (<see cref="OpenMpTeam.CallsAreCheap"/>): at 8 decode rows the norms, RoPE and SwiGLU
    /// (8 × 1,024 to 8 × 5,632 elements) then run on both threads (docs/benchmarks/int8.md, "small work shared").
    /// </summary>
    private const long HeldParallelElements = 1 << 12;

    [ThreadStatic] private static float[]? _scratch;

    /// <summary>CPU, float32 or bfloat16, contiguous, and outside autograd (the kernels record no graph; LoRA training needs one).</summary>
    public static bool Supports(Tensor t) =>
        t.device_type == DeviceType.CPU && t.dtype is ScalarType.Float32 or ScalarType.BFloat16 && t.is_contiguous() && !t.requires_grad;

    /// <summary>
    /// HF LlamaRMSNorm. x <c>[T, H]</c>, weight <c>[H]</c> → <c>[T, H]</c>:
    /// <code>y[t, :] = w ⊙ dt(x[t, :] · 1/√(Σ x[t, :]² / H + ε))        dt = rounding to the compute dtype</code>
    /// Given <paramref name="addFirst"/> <c>[T, H]</c> (a residual branch), x is first updated in place,
    /// <c>x[t, :] = dt(x[t, :] + addFirst[t, :])</c>, in the same pass: the decoder's residual add fused with the norm after it.
    /// </summary>
    public static Tensor RmsNorm(Tensor x, Tensor weight, float eps, Tensor? addFirst = null)
    {
        int rows = (int)x.size(0), h = (int)x.size(1);
        if (weight.size(0) != h || weight.dtype != x.dtype)
            throw new ArgumentException($"RMSNorm weight [{weight.shape[0]}] {weight.dtype} does not fit x [{rows}, {h}] {x.dtype}");
        if (addFirst is not null && (addFirst.dim() != 2 || addFirst.size(0) != rows || addFirst.size(1) != h || addFirst.dtype != x.dtype || !addFirst.is_contiguous()))
            throw new ArgumentException($"RMSNorm residual [{string.Join(", ", addFirst.shape)}] {addFirst.dtype} does not fit x [{rows}, {h}] {x.dtype}");
        var y = empty([rows, h], x.dtype, x.device);
        fixed (byte* xp = x.bytes)
        fixed (byte* wp = weight.bytes)
        fixed (byte* yp = y.bytes)
        fixed (byte* rp = addFirst is null ? default : addFirst.bytes)
            RmsNorm(xp, wp, yp, rp, rows, h, eps, x.dtype == ScalarType.BFloat16);
        return y;
    }

    /// <summary>
    /// <see cref="RmsNorm(Tensor, Tensor, float, Tensor?)"/> on raw memory (no libtorch call): x, y and <paramref name="residual"/>
    /// (null: none) <c>[rows, h]</c> contiguous, weight <c>[h]</c>, all bf16 or all float32.
    /// </summary>
    public static void RmsNorm(byte* x, byte* weight, byte* y, byte* residual, int rows, int h, float eps, bool bf16)
    {
        ForRows(rows, (long)rows * h, new RmsNormJob(x, weight, y, residual, h, eps, bf16));
    }

    private readonly struct RmsNormJob(byte* x, byte* weight, byte* y, byte* residual, int h, float eps, bool bf16) : IParallelRange
    {
        public void Run(long from, long to) => RmsNormRows(x, weight, y, residual, h, eps, bf16, (int)from, (int)to);
    }

    /// <summary>Rows [from, to) of <see cref="RmsNorm(Tensor, Tensor, float, Tensor?)"/>; <paramref name="residual"/> null when there is no residual add.</summary>
    // The row bodies are methods of their own, compiled optimised at first call: a lambda body starts as unoptimised
    // tier-0 code, several times slower for the first hundreds of steps after start-up.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RmsNormRows(byte* x, byte* weight, byte* y, byte* residual, int h, float eps, bool bf16, int from, int to)
    {
        if (ElementwiseRowMath.Supports(h))
        {
            long rowBytes = (long)h * Size(bf16);
            for (int t = from; t < to; t++)
            {
                byte* r = residual == null ? null : residual + t * rowBytes;
                if (bf16)
                    ElementwiseRowMath.RmsNorm<BFloat16Element>(x + t * rowBytes, r, weight, y + t * rowBytes, h, eps);
                else
                    ElementwiseRowMath.RmsNorm<Float32Element>(x + t * rowBytes, r, weight, y + t * rowBytes, h, eps);
            }

            return;
        }

        var buffers = Scratch(3 * h);
        var row = buffers.AsSpan(0, h);
        var w = buffers.AsSpan(h, h);
        var added = buffers.AsSpan(2 * h, h);
        Load(weight, bf16, w);
        for (int t = from; t < to; t++)
        {
            byte* xRow = x + (long)t * h * Size(bf16);
            Load(xRow, bf16, row);
            if (residual != null)
            {
                Load(residual + (long)t * h * Size(bf16), bf16, added);
                TensorPrimitives.Add(row, added, row);
                if (bf16)
                    Bf16.Round(row);
                Store(row, xRow, bf16);
            }

            float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / h + eps);
            TensorPrimitives.Multiply(row, inv, row);
            if (bf16)
                Bf16.Round(row);
            TensorPrimitives.Multiply(row, w, row);
            Store(row, y + (long)t * h * Size(bf16), bf16);
        }
    }

    /// <summary>
    /// The gated MLP's activation of the fused gate/up projection. gateUp <c>[T, 2I]</c> (gate columns first) → <c>[T, I]</c>:
    /// <code>y[t, i] = dt(act(g[t, i])) · u[t, i]        act: silu(g) = g · σ(g) (SwiGLU), or GELU's tanh approximation (GeGLU)
    /// gpt-oss (<see cref="MlpActivation.ClampedSwiglu"/>, limit L):  y[t, i] = dt((clamp(u, −L, L) + 1) · g'·σ(1.702·g'))   g' = min(g, L)</code>
    /// gpt-oss's is rounded once, as vLLM's fused kernel rounds it (HF's bf16 op chain rounds after each of its five ops).
    /// </summary>
    public static Tensor GatedActivation(Tensor gateUp, MlpActivation activation, float limit = 0)
    {
        int rows = (int)gateUp.size(0), width = (int)gateUp.size(1), inter = width / 2;
        var y = empty([rows, inter], gateUp.dtype, gateUp.device);
        fixed (byte* gp = gateUp.bytes)
        fixed (byte* yp = y.bytes)
            GatedActivation(gp, yp, rows, inter, activation, gateUp.dtype == ScalarType.BFloat16, limit);
        return y;
    }

    /// <summary><see cref="GatedActivation(Tensor, MlpActivation, float)"/> on raw memory: gateUp <c>[rows, 2·inter]</c> → y <c>[rows, inter]</c>, contiguous.</summary>
    public static void GatedActivation(byte* gateUp, byte* y, int rows, int inter, MlpActivation activation, bool bf16, float limit = 0)
    {
        if (activation == MlpActivation.ClampedSwiglu)
            ForRows(rows, (long)rows * 2 * inter, new ClampedSwigluRows(gateUp, y, inter, bf16, limit));
        else if (activation == MlpActivation.GeluTanh)
            ForRows(rows, (long)rows * 2 * inter, new GatedActivationJob<GeluTanhGate>(gateUp, y, inter, bf16));
        else
            ForRows(rows, (long)rows * 2 * inter, new GatedActivationJob<SiluGate>(gateUp, y, inter, bf16));
    }

    private readonly struct GatedActivationJob<TAct>(byte* gateUp, byte* y, int inter, bool bf16) : IParallelRange where TAct : struct, IGateActivation
    {
        public void Run(long from, long to) => GatedActivationRows<TAct>(gateUp, y, inter, bf16, (int)from, (int)to);
    }

    /// <summary>Rows [from, to) of <see cref="GatedActivation(Tensor, MlpActivation, float)"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatedActivationRows<TAct>(byte* gateUp, byte* y, int inter, bool bf16, int from, int to) where TAct : struct, IGateActivation
    {
        long rowBytes = (long)inter * Size(bf16);
        if (ElementwiseRowMath.Supports(inter))
        {
            for (int t = from; t < to; t++)
            {
                byte* gate = gateUp + 2 * t * rowBytes;
                if (bf16)
                    ElementwiseRowMath.GatedActivation<BFloat16Element, TAct>(gate, gate + rowBytes, y + t * rowBytes, inter);
                else
                    ElementwiseRowMath.GatedActivation<Float32Element, TAct>(gate, gate + rowBytes, y + t * rowBytes, inter);
            }

            return;
        }

        var buffers = Scratch(2 * inter);
        var g = buffers.AsSpan(0, inter);
        var u = buffers.AsSpan(inter, inter);
        for (int t = from; t < to; t++)
        {
            byte* rowStart = gateUp + 2 * t * rowBytes;
            Load(rowStart, bf16, g);
            Load(rowStart + rowBytes, bf16, u);
            for (int i = 0; i < inter; i++)
                g[i] = TAct.Apply(g[i]);
            if (bf16)
                Bf16.Round(g);
            TensorPrimitives.Multiply(g, u, g);
            Store(g, y + t * rowBytes, bf16);
        }
    }

    /// <summary>
    /// Rotary embedding in place on heads [0, <paramref name="heads"/>) of each row of x <c>[T, W]</c> (head k at columns
    /// k·D..k·D+D−1, halves x₁ | x₂), token t at position positions[t] of the tables cos, sin <c>[P, D/2]</c>:
    /// <code>x₁' = dt(dt(x₁·cos) − dt(x₂·sin))      x₂' = dt(dt(x₂·cos) + dt(x₁·sin))</code>
    /// Given <paramref name="cache"/>, x is a fused q|k|v row and the same pass stores token t's rotated K heads (the last
    /// Hkv rotated heads) and the Hkv V heads after them: <c>keys[h, rows[t], :] = x[t, (heads − Hkv + h)·D ..]</c>,
    /// <c>values[h, rows[t], :] = x[t, (heads + h)·D ..]</c>, which saves the index_copy_ of both.
    /// </summary>
    public static void RotateInPlace(Tensor x, int heads, int headDim, Tensor cos, Tensor sin, IReadOnlyList<int> positions, KvCacheWrite? cache = null)
    {
        // The tables' width is half the rotated dimensions: all of a head's, or its first R (partial rotary).
        int rows = (int)x.size(0), width = (int)x.size(1), half = (int)cos.size(1);
        if (positions.Count != rows || heads * headDim > width || half < 1 || 2 * half > headDim || cos.dtype != x.dtype || !cos.is_contiguous() || !sin.is_contiguous())
            throw new ArgumentException($"RoPE: x [{rows}, {width}] {x.dtype}, {heads} heads of {headDim}, tables [{cos.shape[0]}, {cos.shape[1]}] {cos.dtype}, {positions.Count} positions");
        // Sizes read once: each is a native call, too slow per row.
        long positionCount = cos.size(0);
        foreach (int p in positions)
            if ((uint)p >= (ulong)positionCount)
                throw new ArgumentException($"RoPE: position {p} is beyond the tables' {positionCount}");
        if (cache is { } kv)
        {
            long keyRows = kv.Keys.size(1);
            if (kv.Keys.dtype != x.dtype || !kv.Keys.is_contiguous() || !kv.Values.is_contiguous() || kv.Keys.size(0) != kv.KvHeads
                || kv.Keys.size(2) != headDim || (heads + kv.KvHeads) * headDim > width || kv.Rows.Length != rows || !WithinRows(kv.Rows.Span, keyRows))
                throw new ArgumentException($"RoPE cache write: keys [{string.Join(", ", kv.Keys.shape)}] {kv.Keys.dtype} do not fit x [{rows}, {width}] or the rows");
        }

        var positionArray = positions as int[] ?? positions.ToArray();
        var keys = cache?.Keys;
        var values = cache?.Values;
        fixed (byte* xp = x.bytes)
        fixed (byte* cp = cos.bytes)
        fixed (byte* sp = sin.bytes)
        fixed (byte* kp = keys is null ? default : keys.bytes)
        fixed (byte* vp = values is null ? default : values.bytes)
            Rotate(xp, rows, width, heads, headDim, half, cp, sp, positionArray, kp, vp, cache?.KvHeads ?? 0, keys?.size(1) ?? 0, cache is { } write ? write.Rows.Span : default,
                x.dtype == ScalarType.BFloat16);
    }

    private static bool WithinRows(ReadOnlySpan<long> rows, long count)
    {
        foreach (long r in rows)
            if ((ulong)r >= (ulong)count)
                return false;
        return true;
    }

    /// <summary>
    /// <see cref="RotateInPlace"/> on raw memory, validated by the caller: x <c>[rows, width]</c>, cos and sin tables of
    /// <paramref name="rotaryHalf"/> columns (D/2, or R/2 where only a head's first R dimensions rotate) with a row for every
    /// position in <paramref name="positions"/>; keys and values (null: no cache write)
    /// <c>[kvHeads, cacheRows, D]</c> with <paramref name="cacheRowPerToken"/>[t] &lt; cacheRows (empty: no cache write). All of one dtype.
    /// </summary>
    public static void Rotate(byte* x, int rows, int width, int heads, int headDim, int rotaryHalf, byte* cos, byte* sin, ReadOnlySpan<int> positions,
        byte* keys, byte* values, int kvHeads, long cacheRows, ReadOnlySpan<long> cacheRowPerToken, bool bf16)
    {
        bool vector = VectorExp.IsSupported && rotaryHalf % 16 == 0;
        fixed (int* positionsAt = positions)
        fixed (long* cacheRowsAt = cacheRowPerToken)
            ForRows(rows, (long)rows * heads * headDim, new RopeJob((nint)x, (nint)cos, (nint)sin, (nint)keys, (nint)values, width, heads, headDim, rotaryHalf, kvHeads,
                cacheRows, (nint)cacheRowsAt, (nint)positionsAt, bf16, vector));
    }

    /// <summary>Addresses and sizes of one <see cref="RotateInPlace"/> call; Keys/Values 0 and Rows null without a cache write.</summary>
    private readonly record struct RopeJob(nint X, nint Cos, nint Sin, nint Keys, nint Values, int Width, int Heads, int HeadDim, int RotaryHalf, int KvHeads,
        long CacheRows, nint Rows, nint Positions, bool Bf16, bool Vector) : IParallelRange
    {
        public void Run(long from, long to) => RotateRows(this, (int)from, (int)to);
    }

    /// <summary>Rows [from, to) of <see cref="RotateInPlace"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateRows(in RopeJob job, int from, int to)
    {
        int half = job.RotaryHalf, heads = job.Heads, kvHeads = job.KvHeads;
        bool bf16 = job.Bf16;
        var buffers = Scratch(6 * half);
        Span<float> c = buffers.AsSpan(0, half), s = buffers.AsSpan(half, half), x1 = buffers.AsSpan(2 * half, half),
            x2 = buffers.AsSpan(3 * half, half), a = buffers.AsSpan(4 * half, half), b = buffers.AsSpan(5 * half, half);
        int size = Size(bf16);
        long headBytes = (long)job.HeadDim * size;
        for (int t = from; t < to; t++)
        {
            Load((byte*)job.Cos + (long)((int*)job.Positions)[t] * half * size, bf16, c);
            Load((byte*)job.Sin + (long)((int*)job.Positions)[t] * half * size, bf16, s);
            byte* row = (byte*)job.X + (long)t * job.Width * size;
            for (int k = 0; k < heads; k++)
            {
                byte* head = row + k * headBytes;
                if (job.Vector)
                {
                    fixed (float* cf = c, sf = s)
                        RotateHead(head, head + (long)half * size, cf, sf, half, bf16);
                    continue;
                }

                Load(head, bf16, x1);
                Load(head + (long)half * size, bf16, x2);
                Combine(x1, c, x2, s, a, b, subtract: true, bf16);      // a = x₁'
                Store(a, head, bf16);
                Combine(x2, c, x1, s, a, b, subtract: false, bf16);     // a = x₂'
                Store(a, head + (long)half * size, bf16);
            }

            for (int h = 0; h < kvHeads; h++)
            {
                long target = ((long)h * job.CacheRows + ((long*)job.Rows)[t]) * headBytes;
                Buffer.MemoryCopy(row + (heads - kvHeads + h) * headBytes, (byte*)job.Keys + target, headBytes, headBytes);
                Buffer.MemoryCopy(row + (heads + h) * headBytes, (byte*)job.Values + target, headBytes, headBytes);
            }
        }
    }

    /// <summary>One head's rotation on registers, 16 lanes at a time; the bf16 roundings as in <see cref="Combine"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RotateHead(byte* first, byte* second, float* cos, float* sin, int half, bool bf16)
    {
        for (int i = 0; i < half; i += 16)
        {
            var x1 = Bf16.Load16(first, i, bf16);
            var x2 = Bf16.Load16(second, i, bf16);
            var c = Vector512.Load(cos + i);
            var s = Vector512.Load(sin + i);
            var o1 = Rounded(Rounded(x1 * c, bf16) - Rounded(x2 * s, bf16), bf16);
            var o2 = Rounded(Rounded(x2 * c, bf16) + Rounded(x1 * s, bf16), bf16);
            Put(o1, first, i, bf16);
            Put(o2, second, i, bf16);
        }
    }

    /// <summary><see cref="Bf16.Round(Vector512{float})"/> for bfloat16, identity for float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Rounded(Vector512<float> v, bool bf16) => bf16 ? Bf16.Round(v) : v;

    /// <summary>Stores 16 values already exact in the dtype (bf16: the upper halves).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(Vector512<float> v, byte* destination, int offset, bool bf16)
    {
        if (bf16 && Avx512F.IsSupported)
            Avx512F.ConvertToVector256UInt16(Vector512.ShiftRightLogical(v.AsUInt32(), 16)).Store((ushort*)destination + offset);
        else if (bf16)
        {
            var upper = Vector512.ShiftRightLogical(v.AsUInt32(), 16);
            Vector256.Narrow(upper.GetLower(), upper.GetUpper()).Store((ushort*)destination + offset);
        }
        else
            v.Store((float*)destination + offset);
    }

    /// <summary>result = dt(dt(p·q) ∓ dt(r·s)), <paramref name="scratch"/> holding dt(r·s).</summary>
    private static void Combine(Span<float> p, Span<float> q, Span<float> r, Span<float> s, Span<float> result, Span<float> scratch, bool subtract, bool bf16)
    {
        TensorPrimitives.Multiply(p, q, result);
        TensorPrimitives.Multiply(r, s, scratch);
        if (bf16)
        {
            Bf16.Round(result);
            Bf16.Round(scratch);
        }

        if (subtract)
            TensorPrimitives.Subtract(result, scratch, result);
        else
            TensorPrimitives.Add(result, scratch, result);
    }

    /// <summary>Runs <paramref name="job"/> over row ranges: on the calling thread for small work, else on the OpenMP team.</summary>
    internal static void ForRows<TJob>(int rows, long elements, TJob job) where TJob : struct, IParallelRange
    {
        int chunks = elements < (OpenMpTeam.CallsAreCheap ? HeldParallelElements : ParallelElements) ? 1 : Math.Min(OpenMpTeam.Threads, rows);
        if (chunks <= 1)
        {
            if (rows > 0)
                job.Run(0, rows);
            return;
        }

        OpenMpTeam.For(chunks, RangeParts<TJob>.Even(job, rows, chunks));
    }

    internal static float[] Scratch(int length)
    {
        if (_scratch is null || _scratch.Length < length)
            _scratch = new float[length];
        return _scratch;
    }

    internal static int Size(bool bf16) => bf16 ? 2 : 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Load(byte* source, bool bf16, Span<float> destination)
    {
        if (bf16)
            Bf16.ToFloat(new ReadOnlySpan<ushort>(source, destination.Length), destination);
        else
            new ReadOnlySpan<float>(source, destination.Length).CopyTo(destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store(ReadOnlySpan<float> source, byte* destination, bool bf16)
    {
        if (bf16)
            Bf16.FromFloat(source, new Span<ushort>(destination, source.Length));
        else
            source.CopyTo(new Span<float>(destination, source.Length));
    }
}
