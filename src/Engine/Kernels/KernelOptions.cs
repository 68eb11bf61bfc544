namespace Serving.Engine.Kernels;

/// <summary>
/// Which kernels a model may use, fixed when it is constructed (<see cref="KernelSelection.Select"/> resolves them against
/// its dtype and device once). The defaults are what serving runs; tests and benchmarks that compare paths construct a
/// model (or a <see cref="Model.LlamaModel.WithKernels"/> view over the same weights) with others.
/// </summary>
public sealed record KernelOptions
{
    public static readonly KernelOptions Default = new();

    /// <summary>The batched LoRA kernel; null: the selector's choice for the device and dtype.</summary>
    public ILoraKernel? Lora { get; init; }

    /// <summary>
    /// Decode rows attend through <see cref="PagedDecodeAttention"/> where it supports the tensors (CPU); false forces
    /// libtorch's fused attention over gathered K/V, the path CUDA takes.
    /// </summary>
    public bool CpuDecodeAttention { get; init; } = true;

    /// <summary>
    /// RMSNorm, RoPE and SwiGLU run as <see cref="CpuElementwiseKernels"/> where they support the tensors (CPU), at every
    /// step size (faster than libtorch's op chains on every prefill measured; docs/benchmarks/engine.md); false forces the
    /// libtorch op chains, the path CUDA takes.
    /// </summary>
    public bool CpuElementwise { get; init; } = true;

    /// <summary>
    /// All-decode steps of an AMX-packed bf16 model run as one fused CPU path (the same kernels, with no libtorch op between
    /// GEMMs) where it supports the model; false forces the per-op CPU path.
    /// </summary>
    public bool FusedCpuDecode { get; init; } = true;

    /// <summary>
    /// Projections of at most <see cref="SmallBatchGemv.MaxRows"/> rows (decode steps of up to 64 sequences) run on
    /// <see cref="SmallBatchGemv"/>, which streams each weight once at the read bandwidth, where it supports the tensors (CPU,
    /// bf16 or float32, plain weights); false forces libtorch's GEMM at every size.
    /// </summary>
    public bool CpuSmallBatchProjections { get; init; } = true;
}
