using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Lora;

/// <summary>
/// The adapter slots' LoRA of a mixture of experts' experts: a <see cref="LoraModuleArena"/> per (layer, expert,
/// projection) while some loaded adapter adapts it — made when the first such adapter is loaded, freed when the last is
/// (an arena of every expert of every layer would hold slots × max rank × (in + out) values three times per expert, most
/// of them unused: PEFT's gpt-oss recipe adapts the experts of three layers) — within a byte budget, so an adapter of
/// every expert of a large model is refused rather than taking the device's memory. Loading copies into the arenas.
/// </summary>
internal sealed class ExpertLoraArenas(ModelConfig config, int slots, int maxRank, ScalarType dtype, Device device, long budgetBytes) : IDisposable
{
    private readonly Dictionary<(int Layer, int Expert, LoraTarget Target), LoraModuleArena> _arenas = [];
    private readonly bool[] _adaptsExperts = new bool[slots];

    public long Bytes => _arenas.Values.Sum(a => a.Bytes);

    /// <summary>Whether the adapter in <paramref name="slot"/> adapts some expert.</summary>
    public bool AdaptsExperts(int slot) => _adaptsExperts[slot];

    /// <summary>The arena of expert <paramref name="expert"/>'s <paramref name="target"/> in <paramref name="layer"/>; null when no adapter loaded so far adapts it.</summary>
    public LoraModuleArena? Arena(int layer, int expert, LoraTarget target) => _arenas.GetValueOrDefault((layer, expert, target));

    /// <summary>Throws when <paramref name="m"/> (an expert's module) does not fit: its layer's MLP, its expert, its projection, rank and shapes.</summary>
    public void CheckFits(LoraModuleWeights m)
    {
        var moe = config.Experts ?? throw new ArgumentException($"adapts expert {m.Expert} of layer {m.Layer}; the model has no mixture of experts");
        if ((uint)m.Expert!.Value >= (uint)moe.Experts || !moe.IsSparse(m.Layer))
            throw new ArgumentException($"adapts expert {m.Expert} of layer {m.Layer}, which the model does not have");
        if (!LoraTargets.ExpertTargets.Contains(m.Target))
            throw new ArgumentException($"adapts {LoraTargets.ModuleName(m.Target)} of expert {m.Expert}; an expert has gate, up and down projections");
        if (m.Magnitude is not null)
            throw new ArgumentException($"is a DoRA module of expert {m.Expert} of layer {m.Layer}: DoRA on experts is not served");
        var (inF, outF) = LoraTargets.ExpertShape(config, m.Target);
        if (m.Rank > maxRank)
            throw new ArgumentException($"layer {m.Layer} expert {m.Expert} {LoraTargets.ModuleName(m.Target)}: rank {m.Rank} exceeds the configured max rank {maxRank}");
        if (m.A.Length != m.Rank * inF || m.B.Length != outF * m.Rank)
            throw new ArgumentException($"layer {m.Layer} expert {m.Expert} {LoraTargets.ModuleName(m.Target)}: expected A [{m.Rank}, {inF}] and B [{outF}, {m.Rank}]");
    }

    /// <summary>
    /// Throws when the arenas <paramref name="adapter"/>'s expert modules need and do not have yet would take the arenas
    /// beyond the budget (the slot it replaces may still hold some: its own arenas are counted as kept).
    /// </summary>
    public void CheckBudget(LoraAdapterWeights adapter)
    {
        var added = adapter.Modules.Where(m => m.Expert is not null).Select(m => (m.Layer, m.Expert!.Value, m.Target)).Distinct().Where(k => !_arenas.ContainsKey(k)).ToList();
        if (added.Count == 0)
            return;
        long more = added.Sum(k => ArenaBytes(k.Target));
        if (Bytes + more > budgetBytes)
            throw new ArgumentException($"adapts {added.Count} expert projections no loaded adapter adapts, whose adapter slots would take {more >> 20} MiB more "
                + $"than the {Bytes >> 20} MiB held; the experts' adapter slots may take {budgetBytes >> 20} MiB (Serving:Adapters:MaxExpertSlotMiB)");
    }

    /// <summary>What one expert projection's arena holds: A and Bᵀ at max rank for every slot, and the DoRA rows every arena has.</summary>
    private long ArenaBytes(LoraTarget target)
    {
        var (inF, outF) = LoraTargets.ExpertShape(config, target);
        return (long)slots * maxRank * (inF + outF) * (dtype == ScalarType.Float32 ? 4 : 2) + 2L * slots * outF * sizeof(float);
    }

    /// <summary>Copies <paramref name="modules"/> (expert modules of one adapter, each fitting) into <paramref name="slot"/>, after <see cref="Clear"/>.</summary>
    public void Load(int slot, IEnumerable<LoraModuleWeights> modules)
    {
        foreach (var m in modules)
        {
            var key = (m.Layer, m.Expert!.Value, m.Target);
            if (!_arenas.TryGetValue(key, out var arena))
            {
                var (inF, outF) = LoraTargets.ExpertShape(config, m.Target);
                _arenas[key] = arena = new LoraModuleArena(m.Layer, m.Target, slots, maxRank, inF, outF, dtype, device);
            }

            arena.Load(slot, m);
            _adaptsExperts[slot] = true;
        }
    }

    /// <summary>Zeroes <paramref name="slot"/>'s expert modules, freeing the arenas no other slot uses.</summary>
    public void Clear(int slot)
    {
        if (!_adaptsExperts[slot])
            return;
        foreach (var (key, arena) in _arenas.ToList())
        {
            arena.Clear(slot);
            if (arena.Ranks.All(r => r == 0))
            {
                arena.Dispose();
                _arenas.Remove(key);
            }
        }

        _adaptsExperts[slot] = false;
    }

    public void Dispose()
    {
        foreach (var arena in _arenas.Values)
            arena.Dispose();
    }
}
