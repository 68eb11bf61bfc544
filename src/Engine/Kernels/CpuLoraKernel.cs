using Serving.Engine.Lora;
using static TorchSharp.torch;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> for CPU tensors (float32 or bfloat16, activations and arenas in the same dtype), in two
/// regimes chosen per adapter group:
/// <code>
/// group with ≥ LoraBatchMapping.SegmentRows rows (prefill segments; SGMV):
///     Δ = ((x[R] · A[s, :r]ᵀ) ⊙ (scale[s] · W)[:, None]) · Bt[s, :r]      libtorch GEMMs in the compute dtype
///     y[R, offset..] += Δ
/// other rows (decode; BGMV), in C# on tensor memory, rows ordered by slot and split into one chunk per core:
///     acc = 0;  for (s, w) in mapping[t]:  h[j] = w · scale[s] · (A[s, j] · x[t])         j &lt; r   (LoraRowMath.Shrink)
///                                          acc += Σ_j h[j] · Bt[s, j]                   (LoraRowMath.Expand)
///     y[t, offset..] += acc
/// </code>
/// Work is proportional to each slot's own rank; arenas padded to the max rank cost memory, not time. Rows that share an
/// adapter are adjacent, so its A and Bt stay in cache and are streamed from memory about once per step.
/// </summary>
internal sealed unsafe class CpuLoraKernel : ILoraKernel
{
    /// <summary>Below this many multiply-adds one thread is faster than a parallel loop's hand-off.</summary>
    private const long ParallelThreshold = 500_000;

    [ThreadStatic] private static float[]? _scratch;

    public string Name => "cpu-simd";

    public static bool Supports(Tensor x, Tensor y, LoraModuleArena module) =>
        x.device.type == TorchSharp.DeviceType.CPU && module.A.device.type == TorchSharp.DeviceType.CPU
        && x.dtype == y.dtype && x.dtype == module.A.dtype && x.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && x.is_contiguous() && y.is_contiguous();

    public void Apply(Tensor x, Tensor y, int outputOffset, LoraModuleArena module, LoraBatchMapping mapping)
    {
        if (!Supports(x, y, module))
            throw new ArgumentException("the CPU LoRA kernel needs contiguous CPU tensors of one dtype (float32 or bfloat16)");
        foreach (var g in mapping.SegmentGroups)
            if (module.Ranks[g.Slot] > 0)
                ApplyGemm(x, y, outputOffset, module, g);
        if (mapping.RowKernelRows.Count > 0)
            ApplyRows(x, y, outputOffset, module, mapping);
    }

    private static void ApplyGemm(Tensor x, Tensor y, int offset, LoraModuleArena module, LoraSlotGroup g)
    {
        using var scope = NewDisposeScope();
        int rank = module.Ranks[g.Slot];
        float scale = module.Scales[g.Slot];
        int first = g.Rows[0], n = g.Rows.Length;
        bool contiguous = g.Rows[^1] - first == n - 1;     // a prefill segment: slice instead of gather/scatter
        bool uniform = g.Weights.All(w => w == g.Weights[0]);
        var rows = contiguous ? null : tensor(g.Rows.Select(r => (long)r).ToArray(), ScalarType.Int64, x.device);
        var xs = contiguous ? x.narrow(0, first, n) : x.index_select(0, rows!);
        var h = xs.matmul(module.A[g.Slot].narrow(0, 0, rank).t());
        h = uniform
            ? h * (g.Weights[0] * scale)
            : h * tensor(g.Weights.Select(w => w * scale).ToArray(), ScalarType.Float32, x.device).unsqueeze(1).to(x.dtype);
        var delta = h.matmul(module.Bt[g.Slot].narrow(0, 0, rank));
        var target = y.narrow(1, offset, module.Out);
        if (contiguous)
            target.narrow(0, first, n).add_(delta);
        else
            target.index_add_(0, rows!, delta, 1);
    }

    private sealed record Context(nint X, nint Y, nint A, nint Bt, int Offset, int Width, bool Bf16,
        LoraModuleArena Module, LoraBatchMapping Mapping, IReadOnlyList<bool> Large, IReadOnlyList<int> Rows);

    private static void ApplyRows(Tensor x, Tensor y, int offset, LoraModuleArena module, LoraBatchMapping mapping)
    {
        var rows = mapping.RowKernelRows;
        fixed (byte* xp = x.bytes)
        fixed (byte* yp = y.bytes)
        fixed (byte* ap = module.A.bytes)
        fixed (byte* bp = module.Bt.bytes)
        {
            var c = new Context((nint)xp, (nint)yp, (nint)ap, (nint)bp, offset, (int)y.shape[1], x.dtype == ScalarType.BFloat16, module, mapping,
                mapping.IsSegmentSlot, rows);
            long work = (long)rows.Count * (module.In + module.Out) * module.MaxRank;
            int chunks = Math.Min(Environment.ProcessorCount, rows.Count);
            if (chunks <= 1 || work < ParallelThreshold)
                RunChunk(c, 0, rows.Count);
            else
                Parallel.For(0, chunks, k => RunChunk(c, k * rows.Count / chunks, (k + 1) * rows.Count / chunks));
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void RunChunk(Context c, int from, int to)
    {
        var m = c.Module;
        int inF = m.In, outF = m.Out, elem = c.Bf16 ? 2 : 4, r = m.MaxRank;
        int need = inF + 2 * outF + r;
        if (_scratch is null || _scratch.Length < need)
            _scratch = new float[need];
        fixed (float* scratch = _scratch)
        {
            float* xRow = scratch, acc = scratch + inF, yRow = scratch + inF + outF, h = scratch + inF + 2 * outF;
            var start = c.Mapping.RowStart;
            for (int i = from; i < to; i++)
            {
                int t = c.Rows[i];
                Load(c.X + (nint)t * inF * elem, c.Bf16, new Span<float>(xRow, inF));
                new Span<float>(acc, outF).Clear();
                for (int e = start[t]; e < start[t + 1]; e++)
                {
                    int slot = c.Mapping.EntrySlots[e];
                    int rank = m.Ranks[slot];
                    if (rank == 0 || c.Large[slot])
                        continue;
                    float factor = c.Mapping.EntryWeights[e] * m.Scales[slot];
                    long aBase = (long)slot * r * inF * elem, bBase = (long)slot * r * outF * elem;
                    LoraRowMath.Shrink((byte*)c.A + aBase, c.Bf16, rank, inF, xRow, h);
                    for (int j = 0; j < rank; j++)
                        h[j] *= factor;
                    LoraRowMath.Expand((byte*)c.Bt + bBase, c.Bf16, rank, outF, h, acc);
                }

                nint target = c.Y + (nint)(((long)t * c.Width + c.Offset) * elem);
                var accSpan = new ReadOnlySpan<float>(acc, outF);
                if (c.Bf16)
                {
                    var bits = new Span<ushort>((void*)target, outF);
                    var y = new Span<float>(yRow, outF);
                    Bf16.ToFloat(bits, y);
                    TensorPrimitives.Add(y, accSpan, y);
                    Bf16.FromFloat(y, bits);
                }
                else
                {
                    var yf = new Span<float>((void*)target, outF);
                    TensorPrimitives.Add(yf, accSpan, yf);
                }
            }
        }
    }

    private static void Load(nint source, bool bf16, Span<float> destination)
    {
        if (bf16)
            Bf16.ToFloat(new ReadOnlySpan<ushort>((void*)source, destination.Length), destination);
        else
            new ReadOnlySpan<float>((void*)source, destination.Length).CopyTo(destination);
    }
}
