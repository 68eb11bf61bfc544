using Tensor = TorchSharp.torch.Tensor;

namespace Serving.Engine.Kernels;

/// <summary>
/// Where a fused RoPE pass also stores each token's K and V heads: the layer's cache tensors <c>[Hkv, R, D]</c>
/// (contiguous, the activations' dtype) and the physical row of every token (<c>Rows[t]</c> &lt; R).
/// </summary>
internal readonly record struct KvCacheWrite(Tensor Keys, Tensor Values, int KvHeads, ReadOnlyMemory<long> Rows);
