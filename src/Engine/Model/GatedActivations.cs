using F = TorchSharp.torch.nn.functional;
using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>A gated MLP's <c>act(gate) · up</c> over its fused gate/up output, for a dense MLP and an expert alike.</summary>
internal static class GatedActivations
{
    /// <summary>
    /// gateUp <c>[T, 2I]</c> (gate columns first) → <c>[T, I]</c>: the CPU kernel where <paramref name="cpuKernels"/> and it takes
    /// the tensor, else libtorch's ops (SiLU, GELU's tanh form, or gpt-oss's clamped SwiGLU in float32, rounded once as the kernel
    /// rounds it).
    /// </summary>
    /// <param name="gateUp">The fused gate/up output.</param>
    /// <param name="activation">The activation.</param>
    /// <param name="intermediate">I.</param>
    /// <param name="cpuKernels">Whether the CPU kernel may run it.</param>
    /// <param name="limit">The clamp of <see cref="MlpActivation.ClampedSwiglu"/> (<see cref="ModelConfig.SwigluLimit"/>).</param>
    public static Tensor Apply(Tensor gateUp, MlpActivation activation, int intermediate, bool cpuKernels, double? limit = null)
    {
        if (cpuKernels && CpuElementwiseKernels.Supports(gateUp))
            return CpuElementwiseKernels.GatedActivation(gateUp, activation, (float)(limit ?? 0));
        var gate = gateUp.narrow(1, 0, intermediate);
        if (activation == MlpActivation.ClampedSwiglu)
        {
            using var scope = NewDisposeScope();
            var g = gate.to(ScalarType.Float32, copy: true).ClampInPlace(double.NegativeInfinity, limit!.Value);
            var u = gateUp.narrow(1, intermediate, intermediate).to(ScalarType.Float32, copy: true).ClampInPlace(-limit.Value, limit.Value).PlusInPlace(1);
            var glu = g.Times(ElementwiseRowMath.ClampedSwigluAlpha).sigmoid_().TimesInPlace(g);
            return u.TimesInPlace(glu).to(gateUp.dtype).MoveToOuterDisposeScope();
        }

        return (activation == MlpActivation.GeluTanh ? F.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh) : F.silu(gate)) * gateUp.narrow(1, intermediate, intermediate);
    }
}
