using F = TorchSharp.torch.nn.functional;
using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>A gated MLP's <c>act(gate) · up</c> over its fused gate/up output, for a dense MLP and an expert alike.</summary>
internal static class GatedActivations
{
    /// <summary>
    /// gateUp <c>[T, 2I]</c> (gate columns first) → <c>[T, I]</c>: the CPU kernel where <paramref name="cpuKernels"/> and it takes
    /// the tensor, else libtorch's ops (SiLU, or GELU's tanh form).
    /// </summary>
    public static Tensor Apply(Tensor gateUp, MlpActivation activation, int intermediate, bool cpuKernels)
    {
        if (cpuKernels && CpuElementwiseKernels.Supports(gateUp))
            return CpuElementwiseKernels.GatedActivation(gateUp, activation);
        var gate = gateUp.narrow(1, 0, intermediate);
        return (activation == MlpActivation.GeluTanh ? F.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh) : F.silu(gate)) * gateUp.narrow(1, intermediate, intermediate);
    }
}
