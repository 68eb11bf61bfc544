namespace Serving.Engine.Kernels;

/// <summary>
/// Rows [from, to) of gpt-oss's clamped SwiGLU over fused gate/up rows <c>[T, 2·inter]</c> → <c>[T, inter]</c>
/// (<see cref="CpuElementwiseKernels.GatedActivation(TorchSharp.torch.Tensor, Serving.Contracts.Configuration.MlpActivation, float)"/>):
/// vector rows where the width is whole 32-element tiles, else one element at a time.
/// </summary>
internal readonly unsafe struct ClampedSwigluRows(byte* gateUp, byte* y, int inter, bool bf16, float limit) : IParallelRange
{
    public void Run(long from, long to)
    {
        long rowBytes = (long)inter * CpuElementwiseKernels.Size(bf16);
        for (long t = from; t < to; t++)
        {
            byte* gate = gateUp + 2 * t * rowBytes;
            if (!ElementwiseRowMath.Supports(inter))
                ElementwiseRowMath.ClampedSwigluScalar(gate, gate + rowBytes, y + t * rowBytes, inter, limit, bf16);
            else if (bf16)
                ElementwiseRowMath.ClampedSwiglu<BFloat16Element>(gate, gate + rowBytes, y + t * rowBytes, inter, limit);
            else
                ElementwiseRowMath.ClampedSwiglu<Float32Element>(gate, gate + rowBytes, y + t * rowBytes, inter, limit);
        }
    }
}
