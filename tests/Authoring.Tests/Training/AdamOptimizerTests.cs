using Serving.Authoring.Training;
using static TorchSharp.torch;

namespace Serving.Authoring.Tests.Training;

public sealed class AdamOptimizerTests
{
    [Fact]
    public void Step_SameGradients_SameParametersAsTorchSharpAdamBitForBit()
    {
        using var generator = new Generator(11);
        using var initial = randn([3, 5], generator: generator);
        var gradients = Enumerable.Range(0, 6).Select(_ => randn([3, 5], generator: generator)).ToList();
        var ours = new TorchSharp.Modules.Parameter(initial.clone());
        var theirs = new TorchSharp.Modules.Parameter(initial.clone());
        var untouched = new TorchSharp.Modules.Parameter(initial.clone());      // never gets a gradient: left as it is
        using var adam = new AdamOptimizer([ours, untouched], learningRate: 0.05);
        using var reference = optim.Adam([theirs], 0.05);
        foreach (var g in gradients)
        {
            adam.ZeroGrad();
            reference.zero_grad();
            (ours * g).sum().backward();
            (theirs * g).sum().backward();
            adam.Step();
            reference.step();
        }

        Assert.Equal(theirs.data<float>().ToArray(), ours.data<float>().ToArray());
        Assert.NotEqual(initial.data<float>().ToArray(), ours.data<float>().ToArray());
        Assert.Equal(initial.data<float>().ToArray(), untouched.data<float>().ToArray());
    }
}
