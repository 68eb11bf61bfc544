using Serving.Engine.Runtime;
using Serving.Engine.Tests.Support;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Runtime;

/// <summary>
/// The rule of <see cref="TorchScalars"/>, checked on the compiled engine and on these tests (whose reference sums run beside
/// other tests' collections too): no Scalar is made anywhere else, and nothing calls a TorchSharp member that makes one.
/// </summary>
public sealed class TorchScalarUseTests
{
    private static readonly string Bin = AppContext.BaseDirectory;

    /// <summary>
    /// Callers allowed to break the rule, with why: the test that compares <see cref="Serving.Authoring.Training.AdamOptimizer"/> with
    /// TorchSharp's own Adam has to run TorchSharp's.
    /// </summary>
    private static readonly string[] Allowed = ["Serving.Engine.Tests.Training.AdamOptimizerTests"];

    [Theory]
    [InlineData("Serving.Engine.dll")]
    [InlineData("Serving.Engine.Tests.dll")]
    public void Assembly_CallsIntoTorchSharp_NoneMakesATemporaryScalar(string file)
    {
        var offences = TorchScalarUseScanner.Offences(Bin, file, Allowed);
        Assert.True(offences.Count == 0, "use TorchScalars instead of:\n" + string.Join("\n", offences));
    }

    [Fact]
    public void ScalarMakingMembers_TorchSharp_HasTheKnownOnesAndNotTheSafeOnes()
    {
        // The scanner itself: it must see the conversions hidden inside TorchSharp (else the test above proves nothing),
        // and must not flag the overloads that take the caller's Scalar.
        var making = TorchScalarUseScanner.ScalarMakingMembers(Path.Combine(Bin, "TorchSharp.dll"));
        const string tensor = "TorchSharp.torch/Tensor";
        Assert.Contains($"TorchSharp:{tensor}::op_Addition({tensor},{tensor})", making);
        Assert.Contains($"TorchSharp:{tensor}::add_({tensor})", making);
        Assert.Contains($"TorchSharp:{tensor}::op_Multiply({tensor},Single)", making);
        Assert.Contains("TorchSharp:TorchSharp.Modules.Adam::step(System.Func`1<" + tensor + ">)", making);
        Assert.DoesNotContain($"TorchSharp:{tensor}::add({tensor},TorchSharp.Scalar)", making);
        Assert.DoesNotContain($"TorchSharp:{tensor}::op_Multiply({tensor},{tensor})", making);
        Assert.DoesNotContain($"TorchSharp:{tensor}::matmul({tensor})", making);
    }

    [Fact]
    public void TorchScalars_EachHelper_ComputesWhatItsNameSays()
    {
        using var scope = NewDisposeScope();
        var a = tensor(new[] { 1f, -2f });
        var b = tensor(new[] { 3f, 0.5f });
        Assert.Equal([4f, -1.5f], a.Plus(b).data<float>().ToArray());
        Assert.Equal([1.5f, -1.5f], a.Plus(0.5).data<float>().ToArray());
        Assert.Equal([3f, -6f], a.Times(3).data<float>().ToArray());
        Assert.Equal([0.5f, -1f], a.DividedBy(2).data<float>().ToArray());
        Assert.Equal([1f, 4f], a.Squared().data<float>().ToArray());
        Assert.Equal([7f, -1f], a.clone().PlusInPlace(b, alpha: 2).data<float>().ToArray());
        Assert.Equal([4f, -1.5f], a.clone().PlusInPlace(b).data<float>().ToArray());
        Assert.Equal([1.25f, -1.75f], a.clone().PlusInPlace(0.25).data<float>().ToArray());
        Assert.Equal([2f, -4f], a.clone().TimesInPlace(2).data<float>().ToArray());
        Assert.Equal([7f, 7f], a.clone().FillWith(7).data<float>().ToArray());
        Assert.Equal([0f, 0f], a.clone().FillWith(0).data<float>().ToArray());
        Assert.Equal([7f, -4f], a.clone().PlusProductInPlace(a, b, 2).data<float>().ToArray());
        Assert.Equal([1.5f, -8f], a.clone().PlusQuotientInPlace(a, b, 1.5).data<float>().ToArray());
        Assert.Equal([0L, 1L, 2L], TorchScalars.Range(3, ScalarType.Int64).data<long>().ToArray());
        var y = zeros(3);
        y.IndexPlusInPlace(0, tensor(new[] { 2L, 0L, 2L }), tensor(new[] { 1f, 2f, 3f }));
        Assert.Equal([2f, 0f, 4f], y.data<float>().ToArray());
    }
}
