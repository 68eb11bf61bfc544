using F = TorchSharp.torch.nn.functional;
using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

/// <summary>Each fused kernel against the libtorch op chain it replaces (LlamaModel's fallback), both dtypes, odd sizes included.</summary>
public sealed class CpuElementwiseKernelsTests
{
    [Theory]
    [InlineData(ScalarType.Float32, 3, 64)]
    [InlineData(ScalarType.Float32, 200, 1024)]   // parallel rows
    [InlineData(ScalarType.Float32, 5, 37)]
    [InlineData(ScalarType.BFloat16, 32, 1024)]
    [InlineData(ScalarType.BFloat16, 300, 1000)]
    public void RmsNorm_RandomRows_MatchesLibtorchOps(ScalarType dtype, int rows, int hidden)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows + hidden);
        var x = randn(rows, hidden).Times(3).to(dtype);
        var w = rand(hidden).Plus(0.5).to(dtype);
        const float eps = 1e-5f;

        var fast = CpuElementwiseKernels.RmsNorm(x, w, eps);
        var xf = x.to(ScalarType.Float32);
        var expected = w * (xf * rsqrt(xf.Squared().mean([-1L], keepdim: true).Plus(eps))).to(dtype);

        AssertClose(expected, fast, dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 3, 64)]
    [InlineData(ScalarType.BFloat16, 32, 1024)]
    [InlineData(ScalarType.BFloat16, 200, 1000)]   // parallel rows
    public void RmsNorm_WithResidual_AddsInPlaceThenNormalisesTheSum(ScalarType dtype, int rows, int hidden)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows * 7 + hidden);
        var x = randn(rows, hidden).Times(3).to(dtype);
        var residual = randn(rows, hidden).to(dtype);
        var w = rand(hidden).Plus(0.5).to(dtype);
        const float eps = 1e-6f;
        var sum = x.Plus(residual);

        var fast = CpuElementwiseKernels.RmsNorm(x, w, eps, addFirst: residual);

        Assert.True(x.equal(sum).all().item<bool>(), "x does not hold x + residual afterwards");
        var sf = sum.to(ScalarType.Float32);
        AssertClose(w * (sf * rsqrt(sf.Squared().mean([-1L], keepdim: true).Plus(eps))).to(dtype), fast, dtype);
    }

    [Theory]
    [InlineData(ScalarType.Float32, 4, 176)]
    [InlineData(ScalarType.Float32, 64, 2816)]    // parallel rows
    [InlineData(ScalarType.BFloat16, 32, 2816)]
    [InlineData(ScalarType.BFloat16, 7, 33)]
    public void GatedActivation_SiluOnRandomRows_MatchesLibtorchOps(ScalarType dtype, int rows, int intermediate)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows * intermediate);
        var gateUp = randn(rows, 2 * intermediate).Times(4).to(dtype);

        var fast = CpuElementwiseKernels.GatedActivation(gateUp, MlpActivation.Silu);
        var expected = F.silu(gateUp.narrow(1, 0, intermediate)) * gateUp.narrow(1, intermediate, intermediate);

        AssertClose(expected, fast, dtype);
    }

    /// <summary>Gemma's GeGLU, against libtorch's <c>gelu(approximate='tanh')</c>; gates up to ±16 reach both tails.</summary>
    [Theory]
    [InlineData(ScalarType.Float32, 4, 176)]
    [InlineData(ScalarType.Float32, 64, 2816)]    // parallel rows
    [InlineData(ScalarType.BFloat16, 32, 2816)]
    [InlineData(ScalarType.BFloat16, 7, 33)]      // not whole tiles: the scalar rows
    public void GatedActivation_GeluTanhOnRandomRows_MatchesLibtorchOps(ScalarType dtype, int rows, int intermediate)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows + intermediate);
        var gateUp = randn(rows, 2 * intermediate).Times(4).to(dtype);

        var fast = CpuElementwiseKernels.GatedActivation(gateUp, MlpActivation.GeluTanh);
        var expected = F.gelu(gateUp.narrow(1, 0, intermediate), TorchSharp.Modules.GELU.Approximate.tanh) * gateUp.narrow(1, intermediate, intermediate);

        AssertClose(expected, fast, dtype);
    }

    /// <summary>
    /// gpt-oss's clamped SwiGLU (limit 7), against its formula in float32 libtorch ops rounded once; gates and ups up to ±16
    /// reach both clamps, and the scalar rows (33 wide) take the same path.
    /// </summary>
    [Theory]
    [InlineData(ScalarType.Float32, 4, 96)]
    [InlineData(ScalarType.Float32, 64, 2880)]    // parallel rows, gpt-oss's width
    [InlineData(ScalarType.BFloat16, 32, 2880)]
    [InlineData(ScalarType.BFloat16, 7, 33)]
    public void GatedActivation_ClampedSwigluOnRandomRows_MatchesItsFormula(ScalarType dtype, int rows, int intermediate)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows * 3 + intermediate);
        var gateUp = randn(rows, 2 * intermediate).Times(4).to(dtype);

        var fast = CpuElementwiseKernels.GatedActivation(gateUp, MlpActivation.ClampedSwiglu, 7f);
        var g = gateUp.narrow(1, 0, intermediate).to(ScalarType.Float32, copy: true).ClampInPlace(double.NegativeInfinity, 7);
        var u = gateUp.narrow(1, intermediate, intermediate).to(ScalarType.Float32, copy: true).ClampInPlace(-7, 7);
        var expected = (u.Plus(1) * g * F.sigmoid(g.Times(1.702f))).to(dtype);

        AssertClose(expected, fast, dtype);
        Assert.True(gateUp.to(ScalarType.Float32).abs().max().item<float>() > 7, "no value reached the clamp");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 5, 4, 2, 16)]
    [InlineData(ScalarType.Float32, 300, 16, 4, 64)]   // parallel rows
    [InlineData(ScalarType.BFloat16, 32, 16, 4, 64)]
    [InlineData(ScalarType.BFloat16, 9, 8, 8, 128)]
    [InlineData(ScalarType.BFloat16, 9, 8, 8, 128, 96)]   // Phi-4-mini's partial rotary: each head's first 96 dimensions, 48 a half (vector rows)
    [InlineData(ScalarType.Float32, 5, 4, 2, 16, 12)]     // halves of 6: the scalar rows
    public void RotateInPlace_RandomHeads_MatchesLibtorchOpsAndLeavesTheRestAlone(ScalarType dtype, int rows, int qHeads, int kvHeads, int headDim, int? rotaryDim = null)
    {
        using var scope = NewDisposeScope();
        manual_seed(rows + headDim);
        int rotated = qHeads + kvHeads, width = (rotated + kvHeads) * headDim, r = rotaryDim ?? headDim, half = r / 2;
        var x = randn(rows, width).to(dtype);
        var angles = TorchScalars.Range(4096, ScalarType.Float32).unsqueeze(1) * TorchScalars.Range(half, ScalarType.Float32).Times(-Math.Log(10000.0) / half).exp().unsqueeze(0);
        var cos = angles.cos().to(dtype);
        var sin = angles.sin().to(dtype);
        var random = new Random(rows);
        int[] positions = Enumerable.Range(0, rows).Select(_ => random.Next(4096)).ToArray();
        var positionTensor = tensor(positions.Select(p => (long)p).ToArray(), ScalarType.Int64);
        // HF's rotate-half, written out: out₁ = x₁·cos − x₂·sin, out₂ = x₂·cos + x₁·sin.
        var heads = x.narrow(1, 0, rotated * headDim).view(rows, rotated, headDim);
        var (c, sn) = (cos.index_select(0, positionTensor).unsqueeze(1), sin.index_select(0, positionTensor).unsqueeze(1));
        var (x1, x2) = (heads.narrow(2, 0, half), heads.narrow(2, half, half));
        var expected = cat([x1 * c - x2 * sn, (x2 * c).Plus(x1 * sn), heads.narrow(2, r, headDim - r)], 2).reshape(rows, rotated * headDim);
        var untouched = x.narrow(1, rotated * headDim, kvHeads * headDim).clone();

        CpuElementwiseKernels.RotateInPlace(x, rotated, headDim, cos, sin, positions);

        AssertClose(expected, x.narrow(1, 0, rotated * headDim), dtype);
        Assert.True(untouched.equal(x.narrow(1, rotated * headDim, kvHeads * headDim)).all().item<bool>(), "the value heads changed");
    }

    [Fact]
    public void Supports_TensorInAutograd_IsFalseSoTrainingKeepsItsGraph()
    {
        using var plain = zeros(2, 16);
        using var tracked = zeros(2, 16).requires_grad_();
        Assert.True(CpuElementwiseKernels.Supports(plain));
        Assert.False(CpuElementwiseKernels.Supports(tracked));
        Assert.False(PagedDecodeAttention.Supports(tracked.view(2, 1, 16), plain.view(1, 2, 16)));
    }

    [Theory]
    [InlineData(ScalarType.Float32, 16)]
    [InlineData(ScalarType.BFloat16, 64)]
    public void RotateInPlace_WithCacheWrite_StoresRotatedKeysAndValuesInTheirRows(ScalarType dtype, int headDim)
    {
        using var scope = NewDisposeScope();
        const int rows = 6, qHeads = 4, kvHeads = 2, cacheRows = 40;
        int half = headDim / 2;
        manual_seed(headDim);
        var x = randn(rows, (qHeads + 2 * kvHeads) * headDim).to(dtype);
        var cos = rand(64, half).to(dtype);
        var sin = rand(64, half).to(dtype);
        int[] positions = [3, 4, 5, 0, 1, 63];
        long[] cacheRowOfToken = [39, 0, 17, 5, 6, 22];
        var keys = zeros([kvHeads, cacheRows, headDim], dtype);
        var values = zeros([kvHeads, cacheRows, headDim], dtype);
        var rotatedCopy = x.clone();
        CpuElementwiseKernels.RotateInPlace(rotatedCopy, qHeads + kvHeads, headDim, cos, sin, positions);

        CpuElementwiseKernels.RotateInPlace(x, qHeads + kvHeads, headDim, cos, sin, positions, new KvCacheWrite(keys, values, kvHeads, cacheRowOfToken));

        Assert.True(x.equal(rotatedCopy).all().item<bool>(), "the cache write changed the rotation");
        using var index = tensor(cacheRowOfToken, ScalarType.Int64);
        var expectedKeys = x.narrow(1, qHeads * headDim, kvHeads * headDim).view(rows, kvHeads, headDim).transpose(0, 1);
        var expectedValues = x.narrow(1, (qHeads + kvHeads) * headDim, kvHeads * headDim).view(rows, kvHeads, headDim).transpose(0, 1);
        Assert.True(keys.index_select(1, index).equal(expectedKeys).all().item<bool>(), "keys");
        Assert.True(values.index_select(1, index).equal(expectedValues).all().item<bool>(), "values");
        Assert.Equal(rows, keys.abs().sum([0L, 2L]).count_nonzero().item<long>());      // no other row was written
        Assert.Equal(rows, values.abs().sum([0L, 2L]).count_nonzero().item<long>());
    }

    [Fact]
    public void RotateInPlace_PositionBeyondTheTables_Throws()
    {
        using var x = zeros(1, 16);
        using var table = zeros(8, 8);
        var e = Assert.Throws<ArgumentException>(() => CpuElementwiseKernels.RotateInPlace(x, 1, 16, table, table, [8]));
        Assert.Contains("position 8", e.Message, StringComparison.Ordinal);
    }

    /// <summary>float32: summation order only. bfloat16: the same roundings, so at most one bf16 step where a sum lands on a tie.</summary>
    private static void AssertClose(Tensor expected, Tensor actual, ScalarType dtype)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(dtype, actual.dtype);
        var e = expected.to(ScalarType.Float32);
        var a = actual.to(ScalarType.Float32);
        double tolerance = dtype == ScalarType.Float32 ? 1e-5 : 1.0 / 64;    // bf16 keeps 8 significant bits
        double error = ((a - e).abs() / e.abs().Plus(1)).max().item<float>();
        Assert.True(error <= tolerance, $"max relative difference {error}");
        if (dtype == ScalarType.BFloat16)
        {
            double mismatched = (a != e).to(ScalarType.Float32).mean().item<float>();
            Assert.True(mismatched < 0.01, $"{mismatched:P2} of the bf16 values differ from the op chain's");
        }
    }
}
