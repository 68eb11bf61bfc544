using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// The kernels one model runs, chosen once when it is constructed (vLLM's punica selector idea): the LoRA kernel by
/// device and dtype, and the CPU kernel families only where the model lives on the CPU. Per-call checks remain only as
/// preconditions of a kernel on a particular tensor (contiguity), never as a choice between families.
/// </summary>
/// <param name="Lora">The batched LoRA kernel.</param>
/// <param name="CpuDecodeAttention">Decode attention through <see cref="PagedDecodeAttention"/>.</param>
/// <param name="CpuElementwise">RMSNorm, RoPE and SwiGLU through <see cref="CpuElementwiseKernels"/>.</param>
/// <param name="FusedCpuDecode">All-decode steps through the fused CPU path (when the model is eligible).</param>
/// <param name="CpuSmallBatchProjections">Projections of a few rows through <see cref="SmallBatchGemv"/> (when the CPU has one of its kernels).</param>
public sealed record KernelSelection(ILoraKernel Lora, bool CpuDecodeAttention, bool CpuElementwise, bool FusedCpuDecode, bool CpuSmallBatchProjections)
{
    /// <summary>
    /// <list type="bullet">
    /// <item>LoRA: the option's kernel when given; else on CPU in float32 or bfloat16 <see cref="CpuLoraKernel"/>, on CPU in
    /// another dtype <see cref="ReferenceLoraKernel"/>, off the CPU <see cref="GatherLoraKernel"/> (no host waits in a step).</item>
    /// <item>CPU kernel families: as the options say, on the CPU only (small-batch projections also only in float32 or
    /// bfloat16, with the native kernel present).</item>
    /// </list>
    /// </summary>
    public static KernelSelection Select(KernelOptions options, ScalarType dtype, Device device)
    {
        bool cpu = device.type == DeviceType.CPU;
        var lora = options.Lora ?? (!cpu ? new GatherLoraKernel()
            : dtype is ScalarType.Float32 or ScalarType.BFloat16 ? new CpuLoraKernel() : new ReferenceLoraKernel());
        return new KernelSelection(lora, cpu && options.CpuDecodeAttention, cpu && options.CpuElementwise, cpu && options.FusedCpuDecode,
            cpu && options.CpuSmallBatchProjections && SmallBatchGemv.IsAvailable && dtype is ScalarType.Float32 or ScalarType.BFloat16);
    }
}
