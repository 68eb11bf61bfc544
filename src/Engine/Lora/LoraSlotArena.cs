using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Lora;

/// <summary>
/// The engine's adapter slots: for every layer and projection a <see cref="LoraModuleArena"/> holding up to
/// <see cref="Slots"/> adapters at up to <see cref="MaxRank"/>, and a mixture of experts' experts' arenas
/// (<see cref="ExpertLoraArenas"/>, made as adapters first adapt them). Loading copies into the arenas; freeing only marks
/// the slot's ranks zero.
/// </summary>
public sealed class LoraSlotArena : IDisposable
{
    /// <summary>[layer, target]; null for a projection adapters may not adapt (<see cref="LoraTargets.Adaptable"/>: a mixture-of-experts MLP).</summary>
    private readonly LoraModuleArena?[,] _modules;
    private readonly LoraModuleArena[][][] _fused;
    private readonly string?[] _occupant;
    private readonly Func<int, LoraTarget, (Tensor Weight, Tensor? Bias)>? _baseWeights;
    private readonly ExpertLoraArenas _experts;

    /// <param name="config">The model's shape.</param>
    /// <param name="slots">Adapters held at once.</param>
    /// <param name="maxRank">Largest rank a slot takes.</param>
    /// <param name="dtype">The compute dtype.</param>
    /// <param name="device">Where the arenas live.</param>
    /// <param name="baseWeights">A projection's base weight <c>[out, in]</c> and bias (or null) as served, for DoRA's norms;
    /// null: DoRA adapters cannot be loaded.</param>
    /// <param name="expertSlotBytes">What the experts' slots (<see cref="ExpertLoraArenas"/>) may take together.</param>
    public LoraSlotArena(ModelConfig config, int slots, int maxRank, ScalarType dtype, Device device,
        Func<int, LoraTarget, (Tensor Weight, Tensor? Bias)>? baseWeights = null, long expertSlotBytes = 1L << 30)
    {
        _baseWeights = baseWeights;
        if (slots < 1 || maxRank < 1)
            throw new ArgumentOutOfRangeException(nameof(slots), "adapter slots and max rank must be positive");
        Config = config;
        Slots = slots;
        MaxRank = maxRank;
        _modules = new LoraModuleArena?[config.NumLayers, LoraTargets.All.Count];
        for (int l = 0; l < config.NumLayers; l++)
            foreach (var t in LoraTargets.Adaptable(config))
            {
                var (inF, outF) = LoraTargets.Shape(config, t);
                _modules[l, (int)t] = new LoraModuleArena(l, t, slots, maxRank, inF, outF, dtype, device);
            }

        _fused = Enumerable.Range(0, config.NumLayers)
            .Select(l => LoraTargets.FusedOutputs.Where(g => _modules[l, (int)g[0]] is not null).Select(g => g.Select(t => Arena(l, t)).ToArray()).ToArray()).ToArray();
        _occupant = new string?[slots];
        _experts = new ExpertLoraArenas(config, slots, maxRank, dtype, device, expertSlotBytes);
    }

    public ModelConfig Config { get; }
    public int Slots { get; }
    public int MaxRank { get; }
    /// <summary>Device memory of the arenas, the experts' arenas made so far included.</summary>
    public long Bytes => _modules.Cast<LoraModuleArena?>().Sum(m => m?.Bytes ?? 0) + _experts.Bytes;

    /// <summary>Whether the adapter in <paramref name="slot"/> adapts some expert of a mixture of experts.</summary>
    public bool AdaptsExperts(int slot) => _experts.AdaptsExperts(slot);

    /// <summary>The arena of an expert's projection (gate, up or down); null when no adapter loaded so far adapts it.</summary>
    public LoraModuleArena? ExpertModule(int layer, int expert, LoraTarget target) => _experts.Arena(layer, expert, target);

    public LoraModuleArena Module(int layer, LoraTarget target) => Arena(layer, target);

    private LoraModuleArena Arena(int layer, LoraTarget target) => _modules[layer, (int)target]
        ?? throw new ArgumentException($"adapts {LoraTargets.ModulePath(target)}, which adapters of this mixture-of-experts model may not (its attention's q/k/v/o, and its experts' projections by expert)");

    /// <summary>The arenas of the fused output group that starts with <paramref name="first"/> (Q, O, Gate or Down), in column order.</summary>
    public IReadOnlyList<LoraModuleArena> FusedModules(int layer, LoraTarget first)
    {
        var groups = _fused[layer];
        foreach (var g in groups)
            if (g[0].Target == first)
                return g;
        throw new ArgumentException($"{LoraTargets.ModuleName(first)} does not start a fused output group", nameof(first));
    }

    public string? Occupant(int slot) => _occupant[slot];

    /// <summary>Copies <paramref name="adapter"/> into <paramref name="slot"/>, replacing whatever was there.</summary>
    public void Load(int slot, LoraAdapterWeights adapter)
    {
        CheckSlot(slot);
        CheckFits(adapter);
        Free(slot);
        foreach (var m in adapter.Modules.Where(m => m.Expert is null))
            Arena(m.Layer, m.Target).Load(slot, m, m.Magnitude is null ? null : () => _baseWeights!(m.Layer, m.Target));
        _experts.Load(slot, adapter.Modules.Where(m => m.Expert is not null));
        _occupant[slot] = adapter.Name;
    }

    /// <summary>
    /// Takes the DoRA scales of <paramref name="adapter"/>'s modules (<see cref="LoraModuleArena.RowScale"/>) without
    /// touching a slot, so that a later <see cref="Load"/> of the same weights object only copies them. Safe on any thread
    /// while the engine steps: the runtime runs it on the thread pool, so a cold DoRA adapter's norms (one [out, in]·[in, r]
    /// product per module) do not stall the steps of every other request. The modules are shared out over one worker per
    /// core, largest first, each running its kernels on its own thread (no OpenMP team of its own): the engine's team
    /// waits at each region for its slowest thread, so one worker beside it slows its steps as much as one per core
    /// does, and one per core ends that twice as soon. A plain LoRA adapter needs nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The adapter does not fit these slots, or some DoRA scale is not finite.</exception>
    public void PrepareDora(LoraAdapterWeights adapter)
    {
        if (!adapter.IsDora)
            return;
        CheckFits(adapter);
        var modules = adapter.Modules.Where(m => m.Magnitude is not null)
            .OrderByDescending(m => (long)Arena(m.Layer, m.Target).Out * Arena(m.Layer, m.Target).In).ToArray();
        try
        {
            Parallel.ForEach(Partitioner.Create(modules, EnumerablePartitionerOptions.NoBuffering),
                new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
                m => Kernels.OpenMpTeam.Alone(() => Arena(m.Layer, m.Target).RowScale(m, () => _baseWeights!(m.Layer, m.Target))));
        }
        catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
        {
            // Callers map an ArgumentException (a norm the served weights make zero) to a 422, as from a fill on the loop.
            ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw();
            throw;
        }
    }

    /// <summary>
    /// The DoRA scales of <paramref name="adapter"/>'s DoRA modules, in its module order, taken over the served base
    /// weights (<see cref="PrepareDora"/>'s, or those given to <see cref="UseDoraScales"/>; computed here when neither
    /// ran), so the runtime can keep them beyond this weights object.
    /// </summary>
    /// <exception cref="ArgumentException">The adapter does not fit these slots, or some DoRA scale is not finite.</exception>
    public IReadOnlyList<DoraRowScale> DoraScales(LoraAdapterWeights adapter)
    {
        CheckFits(adapter);
        return [.. adapter.Modules.Where(m => m.Magnitude is not null)
            .Select(m => Arena(m.Layer, m.Target).RowScale(m, () => _baseWeights!(m.Layer, m.Target)))];
    }

    /// <summary>
    /// Gives <paramref name="adapter"/>'s DoRA modules scales taken earlier over these same base weights (one per DoRA
    /// module, in its module order, as <see cref="DoraScales"/> returns them), so neither <see cref="PrepareDora"/> nor
    /// <see cref="Load"/> takes the norms. The caller vouches that they were computed for this adapter's bytes and these
    /// base weights; their shapes and values are checked here.
    /// </summary>
    /// <exception cref="ArgumentException">The adapter does not fit these slots; or a scale's count, length, or values
    /// (not finite) do not fit its module.</exception>
    public void UseDoraScales(LoraAdapterWeights adapter, IReadOnlyList<DoraRowScale> scales)
    {
        ArgumentNullException.ThrowIfNull(scales);
        CheckFits(adapter);
        var modules = adapter.Modules.Where(m => m.Magnitude is not null).ToArray();
        if (scales.Count != modules.Length)
            throw new ArgumentException($"adapter '{adapter.Name}' has {modules.Length} DoRA modules; {scales.Count} scales were given", nameof(scales));
        // All are checked before any is kept, so scales that do not fit leave the adapter as it was.
        for (int i = 0; i < modules.Length; i++)
            Arena(modules[i].Layer, modules[i].Target).CheckRowScale(scales[i]);
        for (int i = 0; i < modules.Length; i++)
            Arena(modules[i].Layer, modules[i].Target).UseRowScale(modules[i], scales[i]);
    }

    /// <summary>Throws when some module of <paramref name="adapter"/> does not fit these slots (layer, rank, shapes), or it is DoRA and the slots have no base weights.</summary>
    private void CheckFits(LoraAdapterWeights adapter)
    {
        foreach (var m in adapter.Modules)
        {
            if ((uint)m.Layer >= (uint)Config.NumLayers)
                throw new ArgumentException($"adapter '{adapter.Name}' targets layer {m.Layer}; the model has {Config.NumLayers}");
            try
            {
                if (m.Expert is null)
                    Arena(m.Layer, m.Target).CheckFits(m);
                else
                    _experts.CheckFits(m);
            }
            catch (ArgumentException ex)
            {
                throw new ArgumentException($"adapter '{adapter.Name}' {ex.Message}", ex);
            }
        }

        _experts.CheckBudget(adapter);
        if (adapter.IsDora && _baseWeights is null)
            throw new ArgumentException($"adapter '{adapter.Name}' is a DoRA adapter; these slots were made without the base weights its norms need");
    }

    public void Free(int slot)
    {
        CheckSlot(slot);
        foreach (var m in _modules)
            m?.Clear(slot);
        _experts.Clear(slot);
        _occupant[slot] = null;
    }

    private void CheckSlot(int slot)
    {
        if ((uint)slot >= (uint)Slots)
            throw new ArgumentOutOfRangeException(nameof(slot), $"slot {slot} is outside [0, {Slots})");
    }

    public void Dispose()
    {
        foreach (var m in _modules)
            m?.Dispose();
        _experts.Dispose();
    }
}
