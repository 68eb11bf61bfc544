using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// The adapters of one fused output group (q/k/v, gate/up, or one projection) for every slot, laid out so that one GEMM
/// shrinks and one GEMM expands all of them (vLLM's packed modules, over all slots at once):
/// <code>
/// A  [S·P·R, in]:   row (s, p, j) = A_p[s, j, :]                           (S slots, P projections, R max rank)
/// Bt [S·P·R, Σout]: row (s, p, j) = scale_p[s] · Bt_p[s, j, :] in columns offset_p .. offset_p + out_p, zero elsewhere
/// </code>
/// so <c>(x·Aᵀ masked to each row's slots and weights)·Bt</c> is the LoRA update of every projection of the group.
/// Derived from the module arenas and rebuilt whenever one of them changed (<see cref="LoraModuleArena.Version"/>).
/// </summary>
internal sealed class StackedLoraGroup : IDisposable
{
    private readonly LoraModuleArena[] _modules;
    private readonly long[] _versions;

    public StackedLoraGroup(IReadOnlyList<LoraModuleArena> modules)
    {
        _modules = [.. modules];
        _versions = new long[_modules.Length];
        Array.Fill(_versions, -1);
        var first = _modules[0];
        Slots = (int)first.A.size(0);
        RowsPerSlot = _modules.Length * first.MaxRank;
        Out = _modules.Sum(m => m.Out);
        // Kept across steps: never owned by the dispose scope of the step that first needed them.
        A = zeros([Slots * RowsPerSlot, first.In], first.A.dtype, first.A.device).DetachFromDisposeScope();
        Bt = zeros([Slots * RowsPerSlot, Out], first.A.dtype, first.A.device).DetachFromDisposeScope();
    }

    /// <summary>S: adapter slots.</summary>
    public int Slots { get; }

    /// <summary>P·R: rows of <see cref="A"/> and <see cref="Bt"/> per slot.</summary>
    public int RowsPerSlot { get; }

    /// <summary>Σout: the group's output columns.</summary>
    public int Out { get; }

    public Tensor A { get; }

    public Tensor Bt { get; }

    /// <summary>True when this stack was built from exactly <paramref name="modules"/>.</summary>
    public bool Covers(IReadOnlyList<LoraModuleArena> modules) =>
        modules.Count == _modules.Length && modules.Select((m, i) => ReferenceEquals(m, _modules[i])).All(same => same);

    /// <summary>Copies the arenas' weights in again if any of them changed since the last copy.</summary>
    public void Refresh()
    {
        if (_modules.Select((m, i) => m.Version == _versions[i]).All(current => current))
            return;
        using var scope = NewDisposeScope();
        int rank = _modules[0].MaxRank, offset = 0;
        var a = A.view(Slots, _modules.Length, rank, -1);
        var bt = Bt.view(Slots, _modules.Length, rank, -1);
        for (int p = 0; p < _modules.Length; p++)
        {
            var m = _modules[p];
            a.select(1, p).copy_(m.A);
            for (int s = 0; s < Slots; s++)
                bt.select(1, p).select(0, s).narrow(1, offset, m.Out).copy_(m.Bt.select(0, s)).TimesInPlace(m.Scales[s]);
            offset += m.Out;
            _versions[p] = m.Version;
        }
    }

    public void Dispose()
    {
        A.Dispose();
        Bt.Dispose();
    }
}
