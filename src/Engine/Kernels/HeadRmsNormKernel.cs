using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// Qwen3's RMSNorm of every query and key head (OLMo 2's of all query and of all key columns at once), on the CPU kernels'
/// row maths (<see cref="CpuElementwiseKernels"/>).
/// </summary>
internal static unsafe class HeadRmsNormKernel
{
    /// <summary>
    /// Qwen3's per-head RMSNorm of q and k, in place. qkv <c>[T, (Hq + 2·Hkv)·D]</c> contiguous, weights <c>[D]</c>:
    /// <code>q[t, h, :] = qw ⊙ dt(q[t, h, :] · 1/√(Σ q[t, h, :]² / D + ε))   for h &lt; Hq; k's Hkv heads alike with kw; v untouched</code>
    /// (each head a row of <see cref="CpuElementwiseKernels.RmsNorm(Tensor, Tensor, float, Tensor?)"/>, so the same rounding).
    /// With <paramref name="acrossHeads"/> (OLMo 2) the weights are <c>[Hq·D]</c> and <c>[Hkv·D]</c> and all of q (all of k) is one row.
    /// </summary>
    public static void Apply(Tensor qkv, int queryHeads, int keyHeads, int headDim, Tensor queryWeight, Tensor keyWeight, float eps, bool acrossHeads = false)
    {
        int rows = (int)qkv.size(0);
        if (qkv.dim() != 2 || qkv.size(1) != (long)(queryHeads + 2 * keyHeads) * headDim || !CpuElementwiseKernels.Supports(qkv)
            || queryWeight.size(0) != (acrossHeads ? queryHeads * headDim : headDim) || keyWeight.size(0) != (acrossHeads ? keyHeads * headDim : headDim)
            || queryWeight.dtype != qkv.dtype || keyWeight.dtype != qkv.dtype)
            throw new ArgumentException($"head RMSNorm weights [{queryWeight.shape[0]}], [{keyWeight.shape[0]}] do not fit qkv [{string.Join(", ", qkv.shape)}] {qkv.dtype}");
        fixed (byte* xp = qkv.bytes)
        fixed (byte* qw = queryWeight.bytes)
        fixed (byte* kw = keyWeight.bytes)
            Apply(xp, rows, queryHeads, keyHeads, headDim, qw, kw, eps, qkv.dtype == ScalarType.BFloat16, acrossHeads);
    }

    /// <summary><see cref="Apply(Tensor, int, int, int, Tensor, Tensor, float, bool)"/> on raw memory (no libtorch call).</summary>
    public static void Apply(byte* qkv, int rows, int queryHeads, int keyHeads, int headDim, byte* queryWeight, byte* keyWeight, float eps, bool bf16,
        bool acrossHeads = false)
    {
        // Across heads, q is one row of Hq·D and k one of Hkv·D; else Hq and Hkv rows of D.
        var (queryWidth, queryRows, keyWidth, keyRows) = acrossHeads ? (queryHeads * headDim, 1, keyHeads * headDim, 1) : (headDim, queryHeads, headDim, keyHeads);
        CpuElementwiseKernels.ForRows(rows, (long)rows * (queryHeads + keyHeads) * headDim,
            new HeadRmsNormJob(qkv, (long)(queryHeads + 2 * keyHeads) * headDim, queryWidth, queryRows, keyWidth, keyRows, queryWeight, keyWeight, eps, bf16));
    }

    private readonly struct HeadRmsNormJob(byte* qkv, long rowWidth, int queryWidth, int queryRows, int keyWidth, int keyRows, byte* queryWeight, byte* keyWeight,
        float eps, bool bf16) : IParallelRange
    {
        public void Run(long from, long to)
        {
            long rowBytes = rowWidth * CpuElementwiseKernels.Size(bf16);
            for (long t = from; t < to; t++)
            {
                byte* q = qkv + t * rowBytes, k = q + (long)queryWidth * queryRows * CpuElementwiseKernels.Size(bf16);
                CpuElementwiseKernels.RmsNormRows(q, queryWeight, q, null, queryWidth, eps, bf16, 0, queryRows);
                CpuElementwiseKernels.RmsNormRows(k, keyWeight, k, null, keyWidth, eps, bf16, 0, keyRows);
            }
        }
    }
}
