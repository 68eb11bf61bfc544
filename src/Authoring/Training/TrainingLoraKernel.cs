using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Authoring.Training;

/// <summary>
/// <see cref="ILoraKernel"/> for training: ignores the slot arena and adds the update of the trainable A and B of each
/// adapted (layer, target) to every row, with autograd recording it:
/// <code>
/// y[:, offset : offset + out] += scale · (x · Aᵀ) · Bᵀ        A [r, in], B [out, r]   (float32 parameters)
/// DoRA (a magnitude m [out]):  y[:, cols] = g ⊙ (y[:, cols] + scale · (x · Aᵀ) · Bᵀ),  g = m / ‖W + scale · B·A‖.detach()
/// </code>
/// The DoRA norm is detached, as PEFT does (the DoRA paper's §4.3: the gradient then flows through m and the update,
/// not through the norm), and taken over <paramref name="baseWeight"/>, the projection's frozen rows <c>[out, in]</c>.
/// </summary>
internal sealed class TrainingLoraKernel(IReadOnlyDictionary<(int Layer, LoraTarget Target), (Tensor A, Tensor B, Tensor? M)> parameters, float scale,
    Func<int, LoraTarget, Tensor>? baseWeight = null) : ILoraKernel
{
    public string Name => "training";

    public void Apply(Tensor x, Tensor y, int outputOffset, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        foreach (var module in modules)
        {
            Apply(x, y, outputOffset, module, mapping);
            outputOffset += module.Out;
        }
    }

    public void Apply(Tensor x, Tensor y, int outputOffset, LoraModuleArena module, LoraBatchMapping mapping)
    {
        if (!parameters.TryGetValue((module.Layer, module.Target), out var p))
            return;
        var delta = x.to(ScalarType.Float32).matmul(p.A.t()).matmul(p.B.t()).Times(scale);
        var columns = y.narrow(1, outputOffset, module.Out);
        if (p.M is null)
        {
            columns.PlusInPlace(delta.to(y.dtype));
            return;
        }

        using var weight = baseWeight!(module.Layer, module.Target);
        using var norm = weight.Plus(p.B.matmul(p.A).Times(scale)).Squared().sum(1).sqrt().detach();
        // Out of place, then copied in: the sum is a new tensor, so no value autograd saved is overwritten.
        var scaled = columns.to(ScalarType.Float32).Plus(delta).mul(p.M.div(norm));
        columns.copy_(scaled.to(y.dtype));
    }
}
