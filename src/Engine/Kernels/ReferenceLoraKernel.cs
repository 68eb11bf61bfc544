using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> in plain TorchSharp ops, one adapter group at a time (runs on any device):
/// <code>
/// for each projection p, for each slot s with rows R and weights W:
///     Δ = ((x[R] · A_p[s, :r]ᵀ) · Bt_p[s, :r]) ⊙ (scale_p[s] · W)[:, None]      (float32)
///     y[:, offset_p : offset_p + out_p].index_add_(0, R, Δ)
/// </code>
/// </summary>
public sealed class ReferenceLoraKernel : ILoraKernel
{
    public string Name => "reference";

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
        using var scope = NewDisposeScope();
        var target = y.narrow(1, outputOffset, module.Out);
        foreach (var group in mapping.Groups)
        {
            int rank = module.Ranks[group.Slot];
            if (rank == 0)
                continue;
            float scale = module.Scales[group.Slot];
            var rows = tensor(group.Rows.Select(r => (long)r).ToArray(), ScalarType.Int64, x.device);
            var weights = tensor(group.Weights.Select(w => w * scale).ToArray(), ScalarType.Float32, x.device).unsqueeze(1);
            var xs = x.index_select(0, rows).to(ScalarType.Float32);
            var a = module.A[group.Slot].narrow(0, 0, rank).to(ScalarType.Float32);
            var bt = module.Bt[group.Slot].narrow(0, 0, rank).to(ScalarType.Float32);
            var delta = xs.matmul(a.t()).matmul(bt) * weights;
            target.IndexPlusInPlace(0, rows, delta.to(y.dtype));
        }
    }
}
