namespace Serving.Engine.Kernels;

/// <summary>
/// A residual add on raw memory, where no norm follows it to fuse it into (OLMo 2's layers norm their outputs, not their
/// inputs): <code>x[t, :] = dt(x[t, :] + r[t, :])</code> for rows t &lt; T, in the compute dtype as libtorch's add rounds it.
/// </summary>
internal static unsafe class ResidualAddKernel
{
    public static void Apply(byte* x, byte* r, int rows, int h, bool bf16)
    {
        long rowBytes = (long)h * CpuElementwiseKernels.Size(bf16);
        if (ElementwiseRowMath.Supports(h))
        {
            for (int t = 0; t < rows; t++)
                if (bf16)
                    ElementwiseRowMath.Add<BFloat16Element>(x + t * rowBytes, r + t * rowBytes, h);
                else
                    ElementwiseRowMath.Add<Float32Element>(x + t * rowBytes, r + t * rowBytes, h);
            return;
        }

        var buffers = CpuElementwiseKernels.Scratch(2 * h);
        var sum = buffers.AsSpan(0, h);
        var add = buffers.AsSpan(h, h);
        for (int t = 0; t < rows; t++)
        {
            CpuElementwiseKernels.Load(x + t * rowBytes, bf16, sum);
            CpuElementwiseKernels.Load(r + t * rowBytes, bf16, add);
            for (int i = 0; i < h; i++)
                sum[i] += add[i];
            CpuElementwiseKernels.Store(sum, x + t * rowBytes, bf16);
        }
    }
}
