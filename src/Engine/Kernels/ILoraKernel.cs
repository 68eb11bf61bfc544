using Serving.Engine.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// Batched multi-adapter LoRA on one projection (BGMV/SGMV). For every token row t and every (slot s, weight w) the
/// mapping gives it:
/// <code>
/// r = rank[s]                                   (0: slot does not adapt this projection, skip)
/// h[j] = A[s, j, :] · x[t, :]                   for j &lt; r          (shrink)
/// y[t, offset + o] += w · scale[s] · Σ_j h[j] · Bt[s, j, o]         (expand)
/// </code>
/// x: [T, in] (compute dtype, contiguous); y: [T, width] (compute dtype, contiguous), updated in place in columns
/// [offset, offset + out). Rows without entries are untouched.
/// </summary>
internal interface ILoraKernel
{
    string Name { get; }

    void Apply(Tensor x, Tensor y, int outputOffset, LoraModuleArena module, LoraBatchMapping mapping);
}
