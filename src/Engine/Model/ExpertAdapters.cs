using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// One step's adapters of one mixture-of-experts layer's experts: the step's mapping, the slots' arenas, and the LoRA kernel
/// the model applies (<c>apply(x, y, outputOffset, module, mapping)</c>, as the LoRA kernel's one-projection apply), or on
/// raw memory the CPU kernel's rows (the fused decode path; the same kernel on the same rows, so the same bits).
/// </summary>
internal sealed class ExpertAdapters(int layer, LoraSlotArena arena, LoraBatchMapping mapping, Action<Tensor, Tensor, int, LoraModuleArena, LoraBatchMapping>? apply,
    CpuLoraKernel? rawKernel = null)
{
    /// <summary>
    /// Adds expert <paramref name="expert"/>'s LoRA of <paramref name="target"/> for the token rows <paramref name="rows"/>
    /// routed to it: <c>y[i, offset + o] += Σ w · scale · B·(A·x[i])</c> over row rows[i]'s slots that adapt it. x
    /// <c>[rows, in]</c>, y <c>[rows, width]</c>, both of the step's rows in <paramref name="rows"/>' order.
    /// </summary>
    public void Apply(int expert, LoraTarget target, Tensor x, Tensor y, int offset, IReadOnlyList<int> rows)
    {
        if (arena.ExpertModule(layer, expert, target) is not { } module)
            return;
        if (mapping.Subset(rows, slot => module.Ranks[slot] > 0) is { } routed)
            (apply ?? throw new InvalidOperationException("these adapters run on raw memory"))(x, y, offset, module, routed);
    }

    /// <summary><see cref="Apply"/> on raw CPU memory: x <c>[rows, in]</c> and y <c>[rows, width]</c> contiguous, in the arenas' dtype.</summary>
    public void ApplyRows(int expert, LoraTarget target, nint x, nint y, int width, int offset, IReadOnlyList<int> rows, bool bf16)
    {
        if (arena.ExpertModule(layer, expert, target) is not { } module)
            return;
        if (mapping.Subset(rows, slot => module.Ranks[slot] > 0) is { } routed)
            (rawKernel ?? throw new InvalidOperationException("these adapters run through tensors"))
                .ApplyRows(x, y, width, bf16, offset, [module], routed);
    }
}
