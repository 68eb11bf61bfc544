using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>Qwen3's RMSNorm of every query and key head, on the CPU kernels' row maths (<see cref="CpuElementwiseKernels"/>).</summary>
internal static unsafe class HeadRmsNormKernel
{
    /// <summary>
    /// Qwen3's per-head RMSNorm of q and k, in place. qkv <c>[T, (Hq + 2·Hkv)·D]</c> contiguous, weights <c>[D]</c>:
    /// <code>q[t, h, :] = qw ⊙ dt(q[t, h, :] · 1/√(Σ q[t, h, :]² / D + ε))   for h &lt; Hq; k's Hkv heads alike with kw; v untouched</code>
    /// (each head a row of <see cref="CpuElementwiseKernels.RmsNorm(Tensor, Tensor, float, Tensor?)"/>, so the same rounding).
    /// </summary>
    public static void Apply(Tensor qkv, int queryHeads, int keyHeads, int headDim, Tensor queryWeight, Tensor keyWeight, float eps)
    {
        int rows = (int)qkv.size(0);
        if (qkv.dim() != 2 || qkv.size(1) != (long)(queryHeads + 2 * keyHeads) * headDim || !CpuElementwiseKernels.Supports(qkv)
            || queryWeight.size(0) != headDim || keyWeight.size(0) != headDim || queryWeight.dtype != qkv.dtype || keyWeight.dtype != qkv.dtype)
            throw new ArgumentException($"head RMSNorm weights [{queryWeight.shape[0]}], [{keyWeight.shape[0]}] do not fit qkv [{string.Join(", ", qkv.shape)}] {qkv.dtype}");
        fixed (byte* xp = qkv.bytes)
        fixed (byte* qw = queryWeight.bytes)
        fixed (byte* kw = keyWeight.bytes)
            Apply(xp, rows, queryHeads, keyHeads, headDim, qw, kw, eps, qkv.dtype == ScalarType.BFloat16);
    }

    /// <summary><see cref="Apply(Tensor, int, int, int, Tensor, Tensor, float)"/> on raw memory (no libtorch call).</summary>
    public static void Apply(byte* qkv, int rows, int queryHeads, int keyHeads, int headDim, byte* queryWeight, byte* keyWeight, float eps, bool bf16)
    {
        CpuElementwiseKernels.ForRows(rows, (long)rows * (queryHeads + keyHeads) * headDim, new HeadRmsNormJob(qkv, queryHeads, keyHeads, headDim, queryWeight, keyWeight, eps, bf16));
    }

    private readonly struct HeadRmsNormJob(byte* qkv, int queryHeads, int keyHeads, int headDim, byte* queryWeight, byte* keyWeight, float eps, bool bf16)
        : IParallelRange
    {
        public void Run(long from, long to)
        {
            long rowBytes = (long)(queryHeads + 2 * keyHeads) * headDim * CpuElementwiseKernels.Size(bf16);
            for (long t = from; t < to; t++)
            {
                byte* q = qkv + t * rowBytes, k = q + (long)queryHeads * headDim * CpuElementwiseKernels.Size(bf16);
                CpuElementwiseKernels.RmsNormRows(q, queryWeight, q, null, headDim, eps, bf16, 0, queryHeads);
                CpuElementwiseKernels.RmsNormRows(k, keyWeight, k, null, headDim, eps, bf16, 0, keyHeads);
            }
        }
    }
}
