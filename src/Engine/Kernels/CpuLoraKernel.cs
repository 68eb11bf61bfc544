using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using F = TorchSharp.torch.nn.functional;
using Serving.Engine.Lora;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> for CPU tensors (float32 or bfloat16, activations and arenas in the same dtype), in two
/// regimes chosen per row range:
/// <code>
/// segment: ≥ LoraBatchMapping.SegmentRows consecutive rows R with the same entries (a prefill chunk; SGMV),
///          per projection p and entry (s, w):
///     h = x[R] · A_p[s, :r]ᵀ                                   libtorch GEMMs in the compute dtype
///     y[R, offset_p..] += (scale_p[s] · w) · h · Bt_p[s, :r]    one addmm_ into the slice of y
/// other rows (decode; BGMV), in C# on tensor memory, rows ordered by slot and cut into work items, each thread of
/// libtorch's OpenMP team (OpenMpTeam) taking one contiguous stretch of them (ContiguousWorkRanges); each row's x is
/// widened once for all projections:
///     for each projection p:
///         acc = 0;  for (s, w) in mapping[t]:  h[j] = w · scale_p[s] · (A_p[s, j] · x[t])     j &lt; r   (LoraRowMath.Shrink)
///                                              acc += Σ_j h[j] · Bt_p[s, j]                  (LoraRowMath.Expand)
///         y[t, offset_p..] += acc
///     four rows with the same single adapter run as one block (LoraRowBlockMath): each weight is loaded once for all four,
///     and the block's sums go from registers straight into y
/// bfloat16 rows with one entry each, on a CPU with AVX512-BF16 (LoraNative, serving_lora.c): the same maths with VDPBF16PS
/// on the weights as stored, h rounded to bfloat16 between the halves (as a bf16 PEFT model's lora_A output is), a slot's
/// rows in runs of up to 16 (LoraBatchMapping.SlotRuns) that read its weights once
/// </code>
/// Work is proportional to each slot's own rank; arenas padded to the max rank cost memory, not time. Rows that share an
/// adapter are adjacent, so its A and Bt stay in cache and are streamed from memory about once per step.
/// </summary>
/// <param name="nativeBf16Rows">false keeps bfloat16 rows on the C# kernel even where the native one is available.</param>
public sealed unsafe class CpuLoraKernel(bool nativeBf16Rows = true) : ILoraKernel
{
    /// <summary>Below this many multiply-adds one thread is faster than a parallel loop's hand-off.</summary>
    private const long ParallelThreshold = 500_000;

    /// <summary>
    /// The same inside a held region (<see cref="OpenMpTeam.CallsAreCheap"/>). Why lower: at 8 rows over 8 rank-16 adapters
    /// the o and down updates (262 K and 494 K multiply-adds, each row's own adapter read from memory) ran on one thread while
    /// the other waited, 1.1–1.5 ms of a 10 ms bf16 step (docs/benchmarks/int8.md, "small work shared").
    /// </summary>
    private const long HeldParallelThreshold = 32_000;

    [ThreadStatic] private static float[]? _scratch;

    public string Name => "cpu-simd";

    /// <summary>True when bfloat16 rows with one entry run on <see cref="LoraNative"/>.</summary>
    public bool NativeBf16Rows { get; } = nativeBf16Rows && LoraNative.IsAvailable;

    public static bool Supports(Tensor x, Tensor y, LoraModuleArena module) =>
        x.device.type == TorchSharp.DeviceType.CPU && module.A.device.type == TorchSharp.DeviceType.CPU
        && x.dtype == y.dtype && x.dtype == module.A.dtype && x.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && x.is_contiguous() && y.is_contiguous();

    public void Apply(Tensor x, Tensor y, int outputOffset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        if (modules.Count == 0)
            return;
        if (!Supports(x, y, modules[0]) || modules.Any(m => m.A.dtype != modules[0].A.dtype || m.In != modules[0].In))
            throw new ArgumentException("the CPU LoRA kernel needs contiguous CPU tensors of one dtype (float32 or bfloat16) and projections of one input");
        int offset = outputOffset;
        foreach (var module in modules)
        {
            foreach (var g in mapping.SegmentGroups)
                if (module.Ranks[g.Slot] > 0)
                    ApplyGemm(x, y, offset, module, g);
            offset += module.Out;
        }

        ApplyRows(Address(x), Address(y), (int)y.size(1), x.dtype == ScalarType.BFloat16, outputOffset, modules, mapping);
    }

    /// <summary>One segment: rows [first, first + n) with one entry (slot, weight) each.</summary>
    private static void ApplyGemm(Tensor x, Tensor y, int offset, LoraModuleArena module, LoraSlotGroup g)
    {
        using var scope = NewDisposeScope();
        int rank = module.Ranks[g.Slot];
        int first = g.Rows[0], n = g.Rows.Length;
        // linear reads A [r, in] as the transposed operand itself (measured: up to 2× faster than matmul(A.t()) in bf16).
        var h = F.linear(x.narrow(0, first, n), module.A[g.Slot].narrow(0, 0, rank));
        var bt = module.Bt[g.Slot].narrow(0, 0, rank);
        // The expand GEMM accumulates into y: no Δ tensor.
        y.narrow(1, offset, module.Out).narrow(0, first, n).addmm_(h, bt, beta: 1, alpha: g.Weights[0] * module.Scales[g.Slot]);
    }

    /// <summary>
    /// What the row kernel's threads share: raw addresses of x and y, the module group, and the step's mapping; y's
    /// columns of projection p start at Offset + Group.Offsets[p].
    /// </summary>
    private readonly record struct Context(nint X, nint Y, int Width, int Offset, bool Bf16, bool Native, LoraModuleGroup Group, LoraBatchMapping Mapping)
    {
        public LoraModuleArena[] Modules => Group.Modules;
        public int In => Group.In;
    }

    /// <summary>The split of the current region's items; one per calling thread, reused from one call to the next.</summary>
    [ThreadStatic] private static ContiguousWorkRanges? _ranges;

    [ThreadStatic] private static double[]? _costs;

    /// <summary>
    /// The row-kernel part of <see cref="Apply"/> on raw memory (no native call on a tensor), for callers that checked what
    /// <see cref="Supports"/> checks: x <c>[T, in]</c> and y <c>[T, width]</c> contiguous CPU memory in the arenas' dtype.
    /// Segment groups of the mapping are not run here.
    /// </summary>
    public void ApplyRows(nint x, nint y, int width, bool bf16, int offset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        if (mapping.RowKernelRows.Count == 0)
            return;
        bool native = bf16 && NativeBf16Rows;
        var work = native ? mapping.SlotRuns : mapping.RowKernelItems;
        int items = work.Count;
        var group = LoraModuleGroup.Of(modules);
        var c = new Context(x, y, width, offset, bf16, native, group, mapping);
        long fma = mapping.RowKernelRows.Count * group.MultiplyAddsPerRow;
        int threads = Math.Min(OpenMpTeam.Threads, items);
        if (threads <= 1 || fma < (OpenMpTeam.CallsAreCheap ? HeldParallelThreshold : ParallelThreshold))
        {
            for (int i = 0; i < items; i++)
                RunItem(c, work[i]);
            return;
        }

        var costs = Runtime.ScratchArrays.Fit(ref _costs, items).AsSpan(0, items);
        ItemCosts(group.Modules, mapping, work, costs);
        var ranges = _ranges ??= new ContiguousWorkRanges([], 1);
        ranges.Reset(costs, threads);
        OpenMpTeam.For(threads, new RowsJob(c, work, ranges));
    }

    private readonly struct RowsJob(Context c, IReadOnlyList<int[]> work, ContiguousWorkRanges ranges) : IParallelPart
    {
        public void Run(int worker)
        {
            while (ranges.TryTake(worker, out int i))
                RunItem(c, work[i]);
        }
    }

    /// <summary>How many rows' arithmetic reading an item's weights from memory costs about (Zen 5: a 16-row native run ≈ 3.7 one-row runs).</summary>
    private const double WeightReadCost = 5;

    /// <summary>Estimated cost of each item: its entries' total rank over the projections × (weight reads + rows).</summary>
    private static void ItemCosts(LoraModuleArena[] modules, LoraBatchMapping mapping, IReadOnlyList<int[]> work, Span<double> costs)
    {
        for (int i = 0; i < costs.Length; i++)
        {
            int t = work[i][0];
            long rank = 0;
            for (int e = mapping.RowStart[t]; e < mapping.RowStart[t + 1]; e++)
                foreach (var m in modules)
                    rank += m.Ranks[mapping.EntrySlots[e]];
            costs[i] = rank * (WeightReadCost + work[i].Length);
        }
    }

    private static nint Address(Tensor t) => (nint)Runtime.CpuTensorMemory.Address(t);

    /// <summary>
    /// Runs one item of <see cref="LoraBatchMapping.RowKernelItems"/> (a block of rows or a single row) or, with the native
    /// kernel, of <see cref="LoraBatchMapping.SlotRuns"/>, on the calling thread.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem(in Context c, int[] rows)
    {
        if (c.Native && NativeItem(c, rows))
            return;
        int inF = c.In, elem = c.Bf16 ? 2 : 4;
        const int n = LoraBatchMapping.BlockRows;
        int need = n * inF + c.Group.MaxOut + n * c.Group.MaxRank + Runtime.CacheLines.Slack<float>();
        if (_scratch is null || _scratch.Length < need)
            _scratch = new float[need];
        var mapping = c.Mapping;
        fixed (float* start = _scratch)
        {
            float* xs = Runtime.CacheLines.Align(start), acc = xs + n * inF, h = acc + c.Group.MaxOut;
            if (rows.Length != n)
            {
                // Single rows; with the native kernel, also a run whose ranks it does not take, row by row.
                foreach (int t in rows)
                {
                    Load(c.X + (nint)t * inF * elem, c.Bf16, new Span<float>(xs, inF));
                    for (int p = 0; p < c.Modules.Length; p++)
                        if (Single(c, p, t, xs, acc, h))
                            AddToOutput(c, p, t, acc);
                }

                return;
            }

            int slot = mapping.EntrySlots[mapping.RowStart[rows[0]]];
            for (int k = 0; k < n; k++)
                Load(c.X + (nint)rows[k] * inF * elem, c.Bf16, new Span<float>(xs + k * inF, inF));
            for (int p = 0; p < c.Modules.Length; p++)
            {
                var m = c.Modules[p];
                int rank = m.Ranks[slot];
                if (rank == 0)
                    continue;
                int outF = m.Out;
                long aBase = (long)slot * m.MaxRank * inF * elem, bBase = (long)slot * m.MaxRank * outF * elem;
                LoraRowBlockMath.Shrink4((byte*)c.Group.A[p] + aBase, c.Bf16, rank, inF, xs, h);
                for (int k = 0; k < n; k++)
                {
                    float factor = mapping.EntryWeights[mapping.RowStart[rows[k]]] * m.Scales[slot];
                    for (int j = 0; j < rank; j++)
                        h[k * rank + j] *= factor;
                }

                LoraRowBlockMath.Expand4Add((byte*)c.Group.Bt[p] + bBase, c.Bf16, rank, outF, h,
                    OutputRow(c, p, rows[0]), OutputRow(c, p, rows[1]), OutputRow(c, p, rows[2]), OutputRow(c, p, rows[3]));
            }
        }
    }

    /// <summary>
    /// Runs one item of <see cref="LoraBatchMapping.SlotRuns"/> on <see cref="LoraNative"/> when its rows have one entry
    /// each (a run of rows sharing one adapter) and the slot's ranks fit the native kernel; false (nothing done) otherwise.
    /// </summary>
    private static bool NativeItem(in Context c, int[] rows)
    {
        var mapping = c.Mapping;
        int first = mapping.RowStart[rows[0]];
        if (mapping.RowStart[rows[0] + 1] - first != 1 || rows.Length > LoraNative.MaxRows)
            return false;
        int slot = mapping.EntrySlots[first];
        foreach (var m in c.Modules)
            if (m.Ranks[slot] > LoraNative.MaxRank)
                return false;
        int n = rows.Length;
        ushort** x = stackalloc ushort*[n];
        ushort** y = stackalloc ushort*[n];
        float* factor = stackalloc float[n];
        for (int k = 0; k < n; k++)
            x[k] = (ushort*)(c.X + (nint)rows[k] * c.In * 2);
        for (int p = 0; p < c.Modules.Length; p++)
        {
            var m = c.Modules[p];
            int rank = m.Ranks[slot];
            if (rank == 0)
                continue;
            for (int k = 0; k < n; k++)
            {
                y[k] = (ushort*)OutputRow(c, p, rows[k]);
                factor[k] = mapping.EntryWeights[mapping.RowStart[rows[k]]] * m.Scales[slot];
            }

            var a = (ushort*)((byte*)c.Group.A[p] + (long)slot * m.MaxRank * c.In * 2);
            var bt = (ushort*)((byte*)c.Group.Bt[p] + (long)slot * m.MaxRank * m.Out * 2);
            LoraNative.Rows(x, a, bt, n, rank, c.In, m.Out, factor, y);
        }

        return true;
    }

    /// <summary>acc = Σ over row t's entries of w · scale · Bt·(A·x[t]) for projection p; false when no entry adapts p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool Single(in Context c, int p, int t, float* xRow, float* acc, float* h)
    {
        var m = c.Modules[p];
        int inF = m.In, outF = m.Out, elem = c.Bf16 ? 2 : 4, r = m.MaxRank;
        var start = c.Mapping.RowStart;
        bool any = false;
        for (int e = start[t]; e < start[t + 1]; e++)
        {
            int slot = c.Mapping.EntrySlots[e];
            int rank = m.Ranks[slot];
            if (rank == 0)
                continue;
            if (!any)
                new Span<float>(acc, outF).Clear();
            any = true;
            float factor = c.Mapping.EntryWeights[e] * m.Scales[slot];
            long aBase = (long)slot * r * inF * elem, bBase = (long)slot * r * outF * elem;
            LoraRowMath.Shrink((byte*)c.Group.A[p] + aBase, c.Bf16, rank, inF, xRow, h);
            for (int j = 0; j < rank; j++)
                h[j] *= factor;
            LoraRowMath.Expand((byte*)c.Group.Bt[p] + bBase, c.Bf16, rank, outF, h, acc);
        }

        return any;
    }

    /// <summary>Where projection p's output of row t starts in y.</summary>
    private static byte* OutputRow(in Context c, int p, int t) => (byte*)c.Y + ((long)t * c.Width + c.Offset + c.Group.Offsets[p]) * (c.Bf16 ? 2 : 4);

    /// <summary>y[t, offset_p..offset_p+out] += acc (for bfloat16: acc in pair order, rounded once).</summary>
    private static void AddToOutput(in Context c, int p, int t, float* acc)
    {
        int outF = c.Modules[p].Out;
        byte* target = OutputRow(c, p, t);
        if (c.Bf16)
        {
            int o = 0;
            for (; o + 32 <= outF; o += 32)
                BFloat16Element.AddPair(target + 2L * o, Vector512.Load(acc + o), Vector512.Load(acc + o + 16));
            var bits = (ushort*)target;
            for (; o < outF; o++)
                bits[o] = Bf16.FromFloat(BitConverter.UInt32BitsToSingle((uint)bits[o] << 16) + acc[o]);
        }
        else
        {
            var yf = new Span<float>(target, outF);
            TensorPrimitives.Add(yf, new ReadOnlySpan<float>(acc, outF), yf);
        }
    }

    /// <summary>One input row as float32, in the weights' pair order (<see cref="ITensorElement.ToPairOrder"/>).</summary>
    private static void Load(nint source, bool bf16, Span<float> destination)
    {
        fixed (float* d = destination)
        {
            if (bf16)
                BFloat16Element.ToPairOrder((byte*)source, destination.Length, d);
            else
                Float32Element.ToPairOrder((byte*)source, destination.Length, d);
        }
    }
}
