using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>The model's RMSNorms in libtorch ops, where the CPU kernels (<see cref="CpuElementwiseKernels"/>) do not run.</summary>
internal static class RmsNorms
{
    /// <summary>HF's RMSNorm over the last dimension: float32 statistics, the normed value rounded to x's dtype, then the weight.</summary>
    public static Tensor Torch(Tensor x, Tensor weight, double eps)
    {
        var xf = x.to(ScalarType.Float32);
        var normed = xf * rsqrt(xf.Squared().mean([-1L], keepdim: true).Plus(eps));
        return weight * normed.to(x.dtype);
    }

    /// <summary>
    /// Qwen3's RMSNorm of every query and key head (OLMo 2's of all query and of all key columns), in place in qkv
    /// <c>[T, (Hq + 2·Hkv)·D]</c>, before RoPE (HF applies it to q_proj's and k_proj's outputs, LoRA included); v's untouched.
    /// </summary>
    public static void HeadsInPlace(Tensor qkv, LlamaLayerWeights w, ModelConfig c, bool cpuKernels)
    {
        if (cpuKernels && CpuElementwiseKernels.Supports(qkv) && CpuElementwiseKernels.Supports(w.QNorm!) && CpuElementwiseKernels.Supports(w.KNorm!))
        {
            HeadRmsNormKernel.Apply(qkv, c.NumHeads, c.NumKvHeads, c.HeadDim, w.QNorm!, w.KNorm!, (float)c.RmsNormEps, c.QkNormAcrossHeads);
            return;
        }

        if (c.QkNormAcrossHeads)
        {
            // OLMo 2: one RMSNorm over all of q's columns and one over k's.
            using var queries = qkv.narrow(1, 0, (long)c.NumHeads * c.HeadDim);
            using var keys = qkv.narrow(1, (long)c.NumHeads * c.HeadDim, (long)c.NumKvHeads * c.HeadDim);
            queries.copy_(Torch(queries, w.QNorm!, c.RmsNormEps));
            keys.copy_(Torch(keys, w.KNorm!, c.RmsNormEps));
            return;
        }

        using var heads = qkv.view(qkv.size(0), c.NumHeads + 2 * c.NumKvHeads, c.HeadDim);
        using var q = heads.narrow(1, 0, c.NumHeads);
        using var k = heads.narrow(1, c.NumHeads, c.NumKvHeads);
        q.copy_(Torch(q, w.QNorm!, c.RmsNormEps));
        k.copy_(Torch(k, w.KNorm!, c.RmsNormEps));
    }
}
