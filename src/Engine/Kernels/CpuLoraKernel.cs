using Serving.Engine.Lora;
using static TorchSharp.torch;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> for CPU tensors (float32 or bfloat16, activations and arenas in the same dtype), in two
/// regimes chosen per row range:
/// <code>
/// segment: ≥ LoraBatchMapping.SegmentRows consecutive rows R with the same entries (a prefill chunk; SGMV), per entry (s, w):
///     h = x[R] · A[s, :r]ᵀ                                   libtorch GEMMs in the compute dtype
///     y[R, offset..] += (scale[s] · w) · h · Bt[s, :r]        one addmm_ into the slice of y
/// other rows (decode; BGMV), in C# on tensor memory, rows ordered by slot and split into one chunk per thread of
/// libtorch's OpenMP team (OpenMpTeam):
///     acc = 0;  for (s, w) in mapping[t]:  h[j] = w · scale[s] · (A[s, j] · x[t])         j &lt; r   (LoraRowMath.Shrink)
///                                          acc += Σ_j h[j] · Bt[s, j]                   (LoraRowMath.Expand)
///     y[t, offset..] += acc
///     four rows with the same single adapter run as one block (LoraRowBlockMath): each weight is loaded once for all four
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

    /// <summary>One segment: rows [first, first + n) with one entry (slot, weight) each.</summary>
    private static void ApplyGemm(Tensor x, Tensor y, int offset, LoraModuleArena module, LoraSlotGroup g)
    {
        using var scope = NewDisposeScope();
        int rank = module.Ranks[g.Slot];
        int first = g.Rows[0], n = g.Rows.Length;
        var h = x.narrow(0, first, n).matmul(module.A[g.Slot].narrow(0, 0, rank).t());
        var bt = module.Bt[g.Slot].narrow(0, 0, rank);
        // The expand GEMM accumulates into y: no Δ tensor.
        y.narrow(1, offset, module.Out).narrow(0, first, n).addmm_(h, bt, beta: 1, alpha: g.Weights[0] * module.Scales[g.Slot]);
    }

    private sealed record Context(nint X, nint Y, nint A, nint Bt, int Offset, int Width, bool Bf16,
        LoraModuleArena Module, LoraBatchMapping Mapping);

    private static void ApplyRows(Tensor x, Tensor y, int offset, LoraModuleArena module, LoraBatchMapping mapping)
    {
        var blocks = mapping.RowKernelBlocks;
        int items = blocks.Count + mapping.RowKernelSingles.Count;
        fixed (byte* xp = x.bytes)
        fixed (byte* yp = y.bytes)
        fixed (byte* ap = module.A.bytes)
        fixed (byte* bp = module.Bt.bytes)
        {
            var c = new Context((nint)xp, (nint)yp, (nint)ap, (nint)bp, offset, (int)y.shape[1], x.dtype == ScalarType.BFloat16, module, mapping);
            long work = (long)mapping.RowKernelRows.Count * (module.In + module.Out) * module.MaxRank;
            int chunks = Math.Min(OpenMpTeam.Threads, items);
            if (chunks <= 1 || work < ParallelThreshold)
            {
                RunItems(c, 0, items);
                return;
            }

            // Contiguous ranges of about equal cost; a block of four rows costs about three single rows.
            var bounds = new int[chunks + 1];
            double total = 3.0 * blocks.Count + mapping.RowKernelSingles.Count, cost = 0;
            for (int i = 0, k = 1; i < items && k < chunks; i++)
            {
                cost += i < blocks.Count ? 3 : 1;
                if (cost >= total * k / chunks)
                    bounds[k++] = i + 1;
            }

            bounds[chunks] = items;
            for (int k = 1; k < chunks; k++)
                bounds[k] = Math.Max(bounds[k], bounds[k - 1]);
            OpenMpTeam.For(chunks, k => RunItems(c, bounds[k], bounds[k + 1]));
        }
    }

    /// <summary>Work items [from, to): first the four-row blocks, then the single rows.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void RunItems(Context c, int from, int to)
    {
        var m = c.Module;
        int inF = m.In, outF = m.Out, r = m.MaxRank;
        const int n = LoraBatchMapping.BlockRows;
        int need = n * inF + n * outF + outF + n * r;
        if (_scratch is null || _scratch.Length < need)
            _scratch = new float[need];
        var blocks = c.Mapping.RowKernelBlocks;
        fixed (float* scratch = _scratch)
        {
            float* xs = scratch, acc = scratch + n * inF, yRow = acc + n * outF, h = yRow + outF;
            for (int i = from; i < to; i++)
            {
                if (i >= blocks.Count)
                {
                    int t = c.Mapping.RowKernelSingles[i - blocks.Count];
                    Single(c, t, xs, acc, h);
                    AddToOutput(c, t, acc, yRow);
                    continue;
                }

                var rows = blocks[i];
                int e0 = c.Mapping.RowStart[rows[0]];
                int slot = c.Mapping.EntrySlots[e0];
                int rank = m.Ranks[slot];
                if (rank == 0)
                    continue;
                for (int k = 0; k < n; k++)
                    Load(c.X + (nint)rows[k] * inF * (c.Bf16 ? 2 : 4), c.Bf16, new Span<float>(xs + k * inF, inF));
                long aBase = (long)slot * r * inF * (c.Bf16 ? 2 : 4), bBase = (long)slot * r * outF * (c.Bf16 ? 2 : 4);
                LoraRowBlockMath.Shrink4((byte*)c.A + aBase, c.Bf16, rank, inF, xs, h);
                for (int k = 0; k < n; k++)
                {
                    float factor = c.Mapping.EntryWeights[c.Mapping.RowStart[rows[k]]] * m.Scales[slot];
                    for (int j = 0; j < rank; j++)
                        h[k * rank + j] *= factor;
                }

                new Span<float>(acc, n * outF).Clear();
                LoraRowBlockMath.Expand4((byte*)c.Bt + bBase, c.Bf16, rank, outF, h, acc);
                for (int k = 0; k < n; k++)
                    AddToOutput(c, rows[k], acc + k * outF, yRow);
            }
        }
    }

    /// <summary>acc = Σ over row t's non-segment entries of w · scale · Bt·(A·x[t]).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Single(Context c, int t, float* xRow, float* acc, float* h)
    {
        var m = c.Module;
        int inF = m.In, outF = m.Out, elem = c.Bf16 ? 2 : 4, r = m.MaxRank;
        var start = c.Mapping.RowStart;
        Load(c.X + (nint)t * inF * elem, c.Bf16, new Span<float>(xRow, inF));
        new Span<float>(acc, outF).Clear();
        for (int e = start[t]; e < start[t + 1]; e++)
        {
            int slot = c.Mapping.EntrySlots[e];
            int rank = m.Ranks[slot];
            if (rank == 0)
                continue;
            float factor = c.Mapping.EntryWeights[e] * m.Scales[slot];
            long aBase = (long)slot * r * inF * elem, bBase = (long)slot * r * outF * elem;
            LoraRowMath.Shrink((byte*)c.A + aBase, c.Bf16, rank, inF, xRow, h);
            for (int j = 0; j < rank; j++)
                h[j] *= factor;
            LoraRowMath.Expand((byte*)c.Bt + bBase, c.Bf16, rank, outF, h, acc);
        }
    }

    /// <summary>y[t, offset..offset+out] += acc (through float32 for bfloat16 outputs).</summary>
    private static void AddToOutput(Context c, int t, float* acc, float* yRow)
    {
        int outF = c.Module.Out;
        nint target = c.Y + (nint)(((long)t * c.Width + c.Offset) * (c.Bf16 ? 2 : 4));
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

    private static void Load(nint source, bool bf16, Span<float> destination)
    {
        if (bf16)
            Bf16.ToFloat(new ReadOnlySpan<ushort>((void*)source, destination.Length), destination);
        else
            new ReadOnlySpan<float>((void*)source, destination.Length).CopyTo(destination);
    }
}
