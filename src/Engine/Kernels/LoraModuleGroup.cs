using System.Runtime.CompilerServices;
using Serving.Engine.Lora;

namespace Serving.Engine.Kernels;

/// <summary>
/// One fused output group's arenas as the row kernel reads them, derived once per group and kept with the group's
/// first arena (keyed by the arena, not by the list, so that a caller passing a new list each call replaces the entry
/// instead of adding one): the arenas' memory stays put for their lifetime; ranks and scales, which change as adapters
/// come and go, are read from the arenas each step.
/// </summary>
internal sealed class LoraModuleGroup
{
    private LoraModuleGroup(IReadOnlyList<LoraModuleArena> modules)
    {
        Modules = [.. modules];
        A = [.. Modules.Select(m => m.AAddress)];
        Bt = [.. Modules.Select(m => m.BtAddress)];
        Offsets = new int[Modules.Length];
        for (int i = 0, o = 0; i < Modules.Length; o += Modules[i].Out, i++)
            Offsets[i] = o;
        In = Modules[0].In;
        MaxOut = Modules.Max(m => m.Out);
        MaxRank = Modules.Max(m => m.MaxRank);
        MultiplyAddsPerRow = Modules.Sum(m => (long)(m.In + m.Out) * m.MaxRank);
    }

    public LoraModuleArena[] Modules { get; }
    public nint[] A { get; }
    public nint[] Bt { get; }
    public int[] Offsets { get; }
    public int In { get; }
    public int MaxOut { get; }
    public int MaxRank { get; }
    public long MultiplyAddsPerRow { get; }

    /// <summary>True when <paramref name="modules"/> are this group's arenas, in order.</summary>
    private bool Holds(IReadOnlyList<LoraModuleArena> modules)
    {
        if (modules.Count != Modules.Length)
            return false;
        for (int i = 0; i < Modules.Length; i++)
            if (!ReferenceEquals(modules[i], Modules[i]))
                return false;
        return true;
    }

    /// <summary>Weak in the arena: a group goes with its arenas (an adapter arena replaced by another).</summary>
    private static readonly ConditionalWeakTable<LoraModuleArena, LoraModuleGroup> Groups = new();

    /// <summary>The group of <paramref name="modules"/> (a fused projection's arenas, in order), derived on first use.</summary>
    public static LoraModuleGroup Of(IReadOnlyList<LoraModuleArena> modules)
    {
        if (Groups.TryGetValue(modules[0], out var group) && group.Holds(modules))
            return group;
        group = new LoraModuleGroup(modules);
        Groups.AddOrUpdate(modules[0], group);
        return group;
    }
}
