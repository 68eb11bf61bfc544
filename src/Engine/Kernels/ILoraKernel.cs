using Serving.Engine.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// Batched multi-adapter LoRA on the projections that read one input (BGMV/SGMV): q, k and v of a fused qkv output,
/// gate and up, or a single projection. For every projection p (output columns placed back to back from
/// <c>offset</c>), every token row t and every (slot s, weight w) the mapping gives it:
/// <code>
/// r = rank_p[s]                                 (0: slot does not adapt this projection, skip)
/// h[j] = A_p[s, j, :] · x[t, :]                 for j &lt; r          (shrink)
/// y[t, offset_p + o] += w · scale_p[s] · Σ_j h[j] · Bt_p[s, j, o]   (expand)
/// offset_p = offset + Σ_{q before p} out_q
/// </code>
/// x: [T, in] (compute dtype, contiguous; every projection's in); y: [T, width] (compute dtype, contiguous), updated in
/// place in columns [offset, offset + Σ out). Rows without entries are untouched. Taking the projections of one input
/// together lets a kernel read and widen each input row once and run one parallel region instead of one per projection.
/// </summary>
public interface ILoraKernel
{
    string Name { get; }

    void Apply(Tensor x, Tensor y, int outputOffset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping);

    /// <summary>One projection.</summary>
    void Apply(Tensor x, Tensor y, int outputOffset, LoraModuleArena module, LoraBatchMapping mapping) =>
        Apply(x, y, outputOffset, [module], mapping);
}
