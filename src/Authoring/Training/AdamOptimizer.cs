using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Authoring.Training;

/// <summary>
/// Adam (Kingma and Ba; PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no weight decay) over float32 parameters, the same
/// arithmetic in the same order as PyTorch's and TorchSharp's single-tensor Adam. Ours because TorchSharp's step makes a
/// temporary Scalar for every constant it passes to libtorch, which another thread's garbage collection can free mid-call
/// (see <see cref="TorchScalars"/>); here every scalar goes through TorchScalars. For parameter p with gradient g, at step t:
/// <code>
/// m ← β₁·m + (1 − β₁)·g             v ← β₂·v + (1 − β₂)·g²
/// p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
/// </code>
/// </summary>
internal sealed class AdamOptimizer : IDisposable
{
    private const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;
    private readonly IReadOnlyList<Tensor> _parameters;
    private readonly Tensor[] _firstMoments, _secondMoments;
    private readonly double _learningRate;
    private int _step;

    /// <param name="parameters">Leaf tensors that require grad; the optimizer does not own them.</param>
    /// <param name="learningRate">lr, the step size before bias correction.</param>
    public AdamOptimizer(IReadOnlyList<Tensor> parameters, double learningRate)
    {
        _parameters = parameters;
        _learningRate = learningRate;
        _firstMoments = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
        _secondMoments = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Sets every parameter's accumulated gradient to zero.</summary>
    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    /// <summary>One update from the gradients accumulated since <see cref="ZeroGrad"/>; parameters without one are left.</summary>
    public void Step()
    {
        _step++;
        double correction1 = 1 - Math.Pow(Beta1, _step), correction2 = 1 - Math.Pow(Beta2, _step);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (int i = 0; i < _parameters.Count; i++)
        {
            var grad = _parameters[i].grad;
            if (grad is null)
                continue;
            _firstMoments[i].TimesInPlace(Beta1).PlusInPlace(grad, 1 - Beta1);
            _secondMoments[i].TimesInPlace(Beta2).PlusProductInPlace(grad, grad, 1 - Beta2);
            var denominator = _secondMoments[i].sqrt().DividedBy(Math.Sqrt(correction2)).PlusInPlace(Epsilon);
            _parameters[i].PlusQuotientInPlace(_firstMoments[i], denominator, -(_learningRate / correction1));
        }
    }

    public void Dispose()
    {
        foreach (var t in _firstMoments.Concat(_secondMoments))
            t.Dispose();
    }
}
