using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Authoring.Training;

/// <summary>
/// <see cref="ILoraKernel"/> for training: ignores the slot arena and adds the update of the trainable A and B of each
/// adapted (layer, target) to every row, with autograd recording it:
/// <code>y[:, offset : offset + out] += scale · (x · Aᵀ) · Bᵀ        A [r, in], B [out, r]   (float32 parameters)</code>
/// </summary>
internal sealed class TrainingLoraKernel(IReadOnlyDictionary<(int Layer, LoraTarget Target), (Tensor A, Tensor B)> parameters, float scale) : ILoraKernel
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
        y.narrow(1, outputOffset, module.Out).PlusInPlace(delta.to(y.dtype));
    }
}
