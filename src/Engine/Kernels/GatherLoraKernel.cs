using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> for accelerators, in TorchSharp ops that never wait for the device inside a step: the engine's
/// kernel wherever <see cref="CpuLoraKernel"/> does not apply (CUDA). The reference kernel builds index tensors per adapter
/// group and projection, and each such upload made the host wait for the device, so the GPU idled between tiny kernels
/// (bench preset on an H100, 30 rows of 8 adapters: a 96 ms step against 27 ms base-only).
/// <code>
/// segments (long prefill chunks, mapping.SegmentGroups), rows R of one slot s with weight w, as CpuLoraKernel (host scalars only):
///     y[R, offset_p..] += (w · scale_p[s]) · (x[R] · A_p[s, :r]ᵀ) · Bt_p[s, :r]
/// every other row (BGMV), over the entries e = (token t_e, slot s_e, weight w_e) of mapping.RowKernelRows, whose index
/// tensors are uploaded once per step and shared by every layer:
///     X = x[t]                                           [E, in]     once per call (the projections share their input)
///     for each projection p:
///         H = bmm(A_p[s], X[:, :, None]) · (w · scale_p[s])    [E, R, 1]   R = max rank: rows beyond a slot's rank are zero
///         y[t, offset_p..] += bmm(Hᵀ, Bt_p[s])              index_add_ over tokens (a mixture's entries add up)
/// </code>
/// Arithmetic in the compute dtype (bf16 on GPUs), as the base projections; the reference kernel works in float32.
/// </summary>
public sealed class GatherLoraKernel : ILoraKernel, IDisposable
{
    private readonly Lock _lock = new();
    private (LoraBatchMapping Mapping, Device Device, RowEntries Entries)? _step;

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
                    .addmm_(h, module.Bt[g.Slot].narrow(0, 0, rank), beta: 1, alpha: g.Weights[0] * module.Scales[g.Slot]);
            }

            offset += module.Out;
        }

        if (mapping.RowKernelRows.Count == 0)
            return;
        var entries = EntriesFor(mapping, x.device);
        var xs = x.index_select(0, entries.Tokens).unsqueeze(2);                          // [E, in, 1]
        offset = outputOffset;
        foreach (var module in modules)
        {
            var factor = (entries.Weights * module.ScalesOnDevice.index_select(0, entries.Slots)).to(x.dtype);
            var h = module.A.index_select(0, entries.Slots).bmm(xs).mul_(factor.view(-1, 1, 1));   // [E, R, 1]
            var delta = h.transpose(1, 2).bmm(module.Bt.index_select(0, entries.Slots)).squeeze(1);  // [E, out]
            y.narrow(1, offset, module.Out).IndexPlusInPlace(0, entries.Tokens, delta);
            offset += module.Out;
        }
    }

    /// <summary>The step's row entries on <paramref name="device"/>: built by the first layer, reused by the others.</summary>
    private RowEntries EntriesFor(LoraBatchMapping mapping, Device device)
    {
        lock (_lock)
        {
            if (_step is var (m, d, cached) && ReferenceEquals(m, mapping) && d.type == device.type && d.index == device.index)
                return cached;
            _step?.Entries.Dispose();
            var tokens = new List<long>();
            var slots = new List<long>();
            var weights = new List<float>();
            foreach (int t in mapping.RowKernelRows)
                for (int e = mapping.RowStart[t]; e < mapping.RowStart[t + 1]; e++)
                {
                    tokens.Add(t);
                    slots.Add(mapping.EntrySlots[e]);
                    weights.Add(mapping.EntryWeights[e]);
                }

            var entries = new RowEntries(
                tensor(tokens.ToArray(), ScalarType.Int64, device).DetachFromDisposeScope(),
                tensor(slots.ToArray(), ScalarType.Int64, device).DetachFromDisposeScope(),
                tensor(weights.ToArray(), ScalarType.Float32, device).DetachFromDisposeScope());
            _step = (mapping, device, entries);
            return entries;
        }
    }

    /// <summary>Frees the last step's index tensors.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _step?.Entries.Dispose();
            _step = null;
        }
    }

    /// <summary>Entry e: token row, slot and weight, each <c>[E]</c> on the device.</summary>
    private sealed record RowEntries(Tensor Tokens, Tensor Slots, Tensor Weights) : IDisposable
    {
        public void Dispose()
        {
            Tokens.Dispose();
            Slots.Dispose();
            Weights.Dispose();
        }
    }
}
