using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// The AMX bf16 projection kernel against float32 sums of the same bf16 values. On a machine without AMX (see
/// <see cref="AmxNative.Status"/>) these return at once, except in the README's second test run, where
/// <c>SERVING_AMX=emulate</c> runs the kernel's own code with its tile instructions emulated; <c>ServingNativeBuildTests</c>
/// pins that a machine that has AMX uses it.
/// </summary>
public sealed class AmxPackedWeightTests
{
    [Theory]
    [InlineData(32, 1536, 1024)]   // a decode step's fused q/k/v on the bench preset: packed in place
    [InlineData(1, 64, 64)]
    [InlineData(17, 50, 70)]       // rows, outputs and inputs all off the 32 grid: every padding path
    [InlineData(33, 100, 176)]     // the tiny preset's intermediate size
    [InlineData(256, 96, 2816)]    // prompt rows, long inputs
    [InlineData(5, 33, 31)]
    public void Linear_RandomShapes_EqualsFloat32SumsRoundedOnce(int m, int n, int k)
    {
        if (!AmxNative.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        manual_seed(m * 31 + n * 7 + k);
        var w = randn(n, k).to(ScalarType.BFloat16);
        var x = randn(m, k).to(ScalarType.BFloat16);
        var bias = randn(n).Times(4).to(ScalarType.BFloat16);
        var sums = x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t());

        using var packed = AmxPackedWeight.Pack(w.clone());

        AssertRoundedOnce(sums, packed.Linear(x), k);
        AssertRoundedOnce(sums.Plus(bias.to(ScalarType.Float32)), packed.Linear(x, bias), k);
        var asFloat32 = packed.Linear(x, bias, float32Output: true);
        Assert.Equal(ScalarType.Float32, asFloat32.dtype);
        Assert.True(asFloat32.eq(packed.Linear(x, bias).to(ScalarType.Float32)).all().item<bool>(), "float32 output is not the bf16 output cast");
    }

    /// <summary>A weight packed (in place) inside a dispose scope outlives it: the scope does not own what the weight holds.</summary>
    [Fact]
    public void Pack_InsideADisposeScope_WeightOutlivesTheScope()
    {
        if (!AmxNative.IsAvailable)
            return;
        manual_seed(5);
        using var w = randn(64, 96).to(ScalarType.BFloat16);
        using var x = randn(3, 96).to(ScalarType.BFloat16);
        AmxPackedWeight packed;
        using (NewDisposeScope())
        {
            var copy = w.clone().DetachFromDisposeScope();
            packed = AmxPackedWeight.Pack(copy);
            randn(1 << 16).Dispose();                       // reuse freed memory, as the next expert's load would
        }

        using (packed)
        using (var scope = NewDisposeScope())
            AssertRoundedOnce(x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t()), packed.Linear(x), 96);
    }

    [Fact]
    public void Linear_StridedInput_UsesItsLogicalValues()
    {
        if (!AmxNative.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        manual_seed(3);
        var w = randn(64, 96).to(ScalarType.BFloat16);
        var wide = randn(8, 200).to(ScalarType.BFloat16);
        var x = wide.narrow(1, 40, 96);   // not contiguous

        using var packed = AmxPackedWeight.Pack(w.clone());

        AssertRoundedOnce(x.to(ScalarType.Float32).matmul(w.to(ScalarType.Float32).t()), packed.Linear(x), 96);
    }

    [Theory]
    [InlineData(64, 128)]    // multiples of 32: packed in place
    [InlineData(50, 70)]     // padded copy
    public void Rows_AnyIds_EqualThePlainWeightRows(int n, int k)
    {
        if (!AmxNative.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        manual_seed(n + k);
        var w = randn(n, k).to(ScalarType.BFloat16);
        var ids = tensor(new long[] { 0, n - 1, 17, 17, 31, 32 % n });

        using var packed = AmxPackedWeight.Pack(w.clone());

        Assert.True(w.index_select(0, ids).eq(packed.Rows(ids)).all().item<bool>(), "rows read back from the packed layout differ");
        Assert.True(w.eq(packed.Unpack()).all().item<bool>(), "the unpacked weight differs from the original");
        Assert.Equal(((n + 31) / 32) * 32 * (((k + 31) / 32) * 32) * 2L, packed.Bytes);
    }

    [Fact]
    public void Rows_IdOutsideTheWeight_Throws()
    {
        if (!AmxNative.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        using var packed = AmxPackedWeight.Pack(randn(40, 64).to(ScalarType.BFloat16));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => packed.Rows(tensor(new long[] { 3, 40 })));
        Assert.Contains("row 40", error.Message);
    }

    [Fact]
    public void Linear_InputOfTheWrongWidthOrDtype_ThrowsNamingTheShapes()
    {
        if (!AmxNative.IsAvailable)
            return;
        using var scope = NewDisposeScope();
        using var packed = AmxPackedWeight.Pack(randn(40, 64).to(ScalarType.BFloat16));

        Assert.Contains("[40, 64]", Assert.Throws<ArgumentException>(() => packed.Linear(randn(2, 63).to(ScalarType.BFloat16))).Message);
        Assert.Contains("Float32", Assert.Throws<ArgumentException>(() => packed.Linear(randn(2, 64))).Message);
        Assert.Contains("bias", Assert.Throws<ArgumentException>(() => packed.Linear(randn(2, 64).to(ScalarType.BFloat16), randn(39).to(ScalarType.BFloat16))).Message);
    }

    /// <summary>
    /// Each output is the float32 sum rounded once to bf16: within half a bf16 unit in the last place (2⁻⁸ relative) plus
    /// what a different float32 summation order may move over k terms.
    /// </summary>
    private static void AssertRoundedOnce(Tensor expected, Tensor actual, int k)
    {
        // Emulated (SERVING_AMX=emulate, the README's second test run): no #UD or #GP that the hardware would have raised.
        var (faults, first) = AmxTileEmulation.Faults;
        Assert.True(faults == 0, $"{faults} faults the hardware would raise; the first: {first}");
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        var e = expected.contiguous().data<float>().ToArray();
        var a = actual.to(ScalarType.Float32).contiguous().data<float>().ToArray();
        float orderSlack = 1e-5f * MathF.Sqrt(k);
        for (int i = 0; i < e.Length; i++)
        {
            float bound = MathF.Abs(e[i]) * (1f / 256) + orderSlack;
            Assert.True(MathF.Abs(a[i] - e[i]) <= bound, $"element {i}: {a[i]} vs float32 sum {e[i]} (bound {bound})");
        }
    }
}
