using System.Runtime.Intrinsics;

namespace Serving.Engine.Kernels;

/// <summary>The activation a gated MLP applies to its gate half (<see cref="CpuElementwiseKernels.GatedActivation(TorchSharp.torch.Tensor, Serving.Contracts.Configuration.MlpActivation, float)"/>), in float32.</summary>
internal interface IGateActivation
{
    /// <summary>act(g) on 16 lanes.</summary>
    static abstract Vector512<float> Apply(Vector512<float> g);

    /// <summary>act(g) of one element, for rows not of whole 32-element tiles.</summary>
    static abstract float Apply(float g);
}
