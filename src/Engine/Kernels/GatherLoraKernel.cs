using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> for accelerators, in TorchSharp ops that never wait for the device inside a step: the engine's
/// kernel wherever <see cref="CpuLoraKernel"/> does not apply (CUDA). Each op is a dispatch and a launch the GPU waits
/// for while the host issues it, so a fused output group (q/k/v, gate/up) costs a few ops whatever its projections,
/// adapters and rows, with every index and mask built once per step and shared by all layers:
/// <code>
/// segments (long prefill chunks, mapping.SegmentGroups), rows R of one slot s with weight w, per projection p:
///     y[R, offset_p..] += (w · scale_p[s]) · (x[R] · A_p[s, :r]ᵀ) · Bt_p[s, :r]
/// every other row, over the group's StackedLoraGroup (A [S·P·R, in], Bt [S·P·R, Σout], scales folded into Bt):
///   dense, when the slots are few (S ≤ DenseSlots, or no more than the row entries):
///     H = x · Aᵀ                                  [T, S·P·R]   every slot's shrink for every row
///     H[t, s, :] ·= M[t, s]                       M [T, S] = Σ weights of row t's entries on slot s (0: none)
///     y[:, offset..offset + Σout] += H · Bt       one GEMM expands every projection of every slot
///   gathered, when they are many, over the entries e = (token t_e, slot s_e, weight w_e) of mapping.RowKernelRows:
///     H = bmm(A[s_e], x[t_e])ᵀ · w_e              [E, P·R]
///     y[t_e, offset..] += H · Bt[s_e]             index_add_ over tokens (a mixture's entries add up)
/// </code>
/// Rows beyond a slot's rank are zero in the arenas, so computing over all R rows changes nothing. Arithmetic in the
/// compute dtype (bf16 on GPUs), as the base projections; the reference kernel works in float32.
/// </summary>
public sealed class GatherLoraKernel : ILoraKernel, IDisposable
{
    /// <summary>Up to this many slots the dense form runs whatever the rows: its shrink reads every slot's A once, which the gathered form reads per entry.</summary>
    public const int DenseSlots = 32;

    private readonly Lock _lock = new();
    private readonly Dictionary<LoraModuleArena, StackedLoraGroup> _stacks = [];
    private (LoraBatchMapping Mapping, Device Device, ScalarType Dtype, StepRows Rows)? _step;

    public string Name => "gather";

    public void Apply(Tensor x, Tensor y, int outputOffset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        if (modules.Count == 0)
            return;
        using var scope = NewDisposeScope();
        int offset = outputOffset;
        foreach (var module in modules)
        {
            foreach (var g in mapping.SegmentGroups)
            {
                int rank = module.Ranks[g.Slot];
                if (rank == 0)
                    continue;
                int first = g.Rows[0], n = g.Rows.Length;
                var h = nn.functional.linear(x.narrow(0, first, n), module.A[g.Slot].narrow(0, 0, rank));
                y.narrow(1, offset, module.Out).narrow(0, first, n)
                    .PlusMatrixProductInPlace(h, module.Bt[g.Slot].narrow(0, 0, rank), g.Weights[0] * module.Scales[g.Slot]);
            }

            offset += module.Out;
        }

        if (mapping.RowKernelRows.Count == 0)
            return;
        StackedLoraGroup stack;
        StepRows rows;
        lock (_lock)
        {
            stack = StackFor(modules);
            rows = RowsFor(mapping, x.device, x.dtype, stack.Slots);
        }

        var output = y.narrow(1, outputOffset, stack.Out);
        if (stack.Slots <= Math.Max(DenseSlots, rows.Entries))
        {
            var h = nn.functional.linear(x, stack.A);                                         // [T, S·P·R]
            h.view(x.size(0), stack.Slots, stack.RowsPerSlot).TimesInPlace(rows.SlotWeights);
            output.PlusMatrixProductInPlace(h, stack.Bt);
            return;
        }

        var a = stack.A.view(stack.Slots, stack.RowsPerSlot, -1).index_select(0, rows.Slots);      // [E, P·R, in]
        var hs = a.bmm(x.index_select(0, rows.Tokens).unsqueeze(2)).TimesInPlace(rows.EntryWeights);       // [E, P·R, 1]
        var delta = hs.transpose(1, 2).bmm(stack.Bt.view(stack.Slots, stack.RowsPerSlot, -1).index_select(0, rows.Slots)).squeeze(1);
        output.IndexPlusInPlace(0, rows.Tokens, delta);                                             // [E, Σout] into the tokens' rows
    }

    /// <summary>The group's stacked weights, current (rebuilt here after a slot changed).</summary>
    private StackedLoraGroup StackFor(IReadOnlyList<LoraModuleArena> modules)
    {
        if (!_stacks.TryGetValue(modules[0], out var stack) || !stack.Covers(modules))
        {
            stack?.Dispose();
            _stacks[modules[0]] = stack = new StackedLoraGroup(modules);
        }

        stack.Refresh();
        return stack;
    }

    /// <summary>The step's row entries and slot weights on <paramref name="device"/>: built by the first layer, reused by the others.</summary>
    private StepRows RowsFor(LoraBatchMapping mapping, Device device, ScalarType dtype, int slots)
    {
        if (_step is var (m, d, t, cached) && ReferenceEquals(m, mapping) && d.type == device.type && d.index == device.index && t == dtype
            && cached.SlotCount == slots)
            return cached;
        _step?.Rows.Dispose();
        var tokens = new List<long>();
        var entrySlots = new List<long>();
        var weights = new List<float>();
        int tokenCount = mapping.RowStart.Count - 1;
        var slotWeights = new float[tokenCount * slots];
        foreach (int token in mapping.RowKernelRows)
            for (int e = mapping.RowStart[token]; e < mapping.RowStart[token + 1]; e++)
            {
                tokens.Add(token);
                entrySlots.Add(mapping.EntrySlots[e]);
                weights.Add(mapping.EntryWeights[e]);
                slotWeights[token * slots + mapping.EntrySlots[e]] += mapping.EntryWeights[e];
            }

        using var entryWeights = tensor(weights.ToArray(), [weights.Count, 1, 1], ScalarType.Float32);
        using var perSlot = tensor(slotWeights, [tokenCount, slots, 1], ScalarType.Float32);
        var rows = new StepRows(
            slots,
            weights.Count,
            tensor(tokens.ToArray(), ScalarType.Int64, device).DetachFromDisposeScope(),
            tensor(entrySlots.ToArray(), ScalarType.Int64, device).DetachFromDisposeScope(),
            entryWeights.to(dtype, device, copy: true).DetachFromDisposeScope(),
            perSlot.to(dtype, device, copy: true).DetachFromDisposeScope());
        _step = (mapping, device, dtype, rows);
        return rows;
    }

    /// <summary>Frees the last step's index tensors and the stacked weights.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _step?.Rows.Dispose();
            _step = null;
            foreach (var stack in _stacks.Values)
                stack.Dispose();
            _stacks.Clear();
        }
    }

    /// <summary>
    /// One step's rows: entry e's token, slot and weight (<c>[E]</c>, <c>[E]</c>, <c>[E, 1, 1]</c>), and each token's summed
    /// weight per slot (<c>[T, S, 1]</c>, zero for base rows and for rows the segment path takes).
    /// </summary>
    private sealed record StepRows(int SlotCount, int Entries, Tensor Tokens, Tensor Slots, Tensor EntryWeights, Tensor SlotWeights) : IDisposable
    {
        public void Dispose()
        {
            Tokens.Dispose();
            Slots.Dispose();
            EntryWeights.Dispose();
            SlotWeights.Dispose();
        }
    }
}
