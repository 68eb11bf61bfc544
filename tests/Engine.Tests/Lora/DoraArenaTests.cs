using Serving.Contracts;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

/// <summary>DoRA's per-slot scale at fill time, and its per-row application on raw memory and through libtorch ops.</summary>
public sealed class DoraArenaTests
{
    private const int Slots = 3, Rank = 4, In = 24, Out = 10;

    private static float[] Random(int count, ulong seed, double offset = 0)
    {
        var r = new SeededRandom(seed);
        return [.. Enumerable.Range(0, count).Select(_ => (float)(r.NextDouble() - 0.5 + offset))];
    }

    private static LoraModuleWeights Dora(ulong seed) => new(0, LoraTarget.Q, Rank, 1.5f, Random(Rank * In, seed), Random(Out * Rank, seed + 1),
        Random(Out, seed + 2, offset: 2));

    [Fact]
    public void Load_DoraModule_ScaleIsMagnitudeOverRowNormsAndClearRestores()
    {
        var w = Random(Out * In, 9);
        var bias = Random(Out, 10);
        using var weight = tensor(w, [Out, In]);
        using var biasTensor = tensor(bias);
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.Float32, CPU);
        var module = Dora(1);
        arena.Load(0, Dora(7), () => (weight.alias(), biasTensor.alias()));      // keeps ‖W_o‖² for later fills
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        arena.Load(1, module, () => (weight.alias(), biasTensor.alias()));
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        using var scale = arena.DoraScale[1];
        using var shift = arena.DoraShift[1];
        var g = scale.data<float>().ToArray();
        var c = shift.data<float>().ToArray();
        for (int o = 0; o < Out; o++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, In).Sum(i =>
            {
                double v = w[o * In + i] + module.Scale * Enumerable.Range(0, Rank).Sum(j => (double)module.B[o * Rank + j] * module.A[j * In + i]);
                return v * v;
            }));
            Assert.Equal(module.Magnitude![o] / norm, g[o], 5);
            Assert.Equal((1 - module.Magnitude[o] / norm) * bias[o], c[o], 5);
        }

        Assert.True(arena.IsDora[1]);
        arena.Clear(1);
        Assert.False(arena.IsDora[1]);
        using var cleared = arena.DoraScale[1];
        Assert.All(cleared.data<float>().ToArray(), v => Assert.Equal(1f, v));
    }

    [Theory]
    [InlineData(ScalarType.Float32, 16, 1e-5)]    // one vector per output row on the native path
    [InlineData(ScalarType.Float32, 12, 1e-5)]    // any other rank: row by row, A padded to 16 rows
    [InlineData(ScalarType.Float32, 8, 1e-5)]     // ranks of whole 8-lane vectors up to 32: G·b held in registers
    [InlineData(ScalarType.Float32, 32, 1e-5)]
    [InlineData(ScalarType.Float32, 40, 1e-5)]    // above 32: G·b through memory
    [InlineData(ScalarType.BFloat16, 16, 2e-3)]   // W·Aᵀ from bf16 A (as the slot serves it)
    public void Load_DoraModuleOfRank_ScaleMatchesMergedRowNorms(ScalarType dtype, int rank, double tolerance)
    {
        const int inputs = 200, outputs = 70;
        using var weight = tensor(Random(outputs * inputs, 21), [outputs, inputs]).to(dtype);
        using var weight64 = weight.to(ScalarType.Float64);
        var w = weight64.data<double>().ToArray();
        var module = new LoraModuleWeights(0, LoraTarget.Q, rank, 0.75f, Random(rank * inputs, 22), Random(outputs * rank, 23), Random(outputs, 24, offset: 2));
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Math.Max(16, rank), inputs, outputs, dtype, CPU);

        arena.Load(1, module, () => (weight.alias(), null));

        using var scale = arena.DoraScale[1];
        var g = scale.data<float>().ToArray();
        for (int o = 0; o < outputs; o++)
        {
            double norm = Math.Sqrt(Enumerable.Range(0, inputs).Sum(i =>
            {
                double v = w[o * inputs + i] + module.Scale * Enumerable.Range(0, rank).Sum(j => (double)module.B[o * rank + j] * module.A[j * inputs + i]);
                return v * v;
            }));
            double expected = module.Magnitude![o] / norm;
            Assert.True(Math.Abs(g[o] - expected) <= expected * tolerance, $"row {o}: {g[o]} vs {expected}");
        }
    }

    [Fact]
    public void Load_SameModuleObjectAgain_CopiesItsScaleWithoutReadingTheBase()
    {
        using var weight = tensor(Random(Out * In, 41), [Out, In]);
        using var bias = tensor(Random(Out, 42));
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.Float32, CPU);
        var module = Dora(43);
        int reads = 0;
        (Tensor, Tensor?) Base()
        {
            reads++;
            return (weight.alias(), bias.alias());
        }

        arena.Load(0, module, Base);
        arena.Clear(0);
        arena.Load(2, module, Base);                                          // a refill from the host copy
        Assert.Equal(1, reads);
        arena.Load(1, module with { }, Base);                                 // equal values, another object: a new version
        Assert.Equal(2, reads);

        using var refilled = arena.DoraScale[2];
        using var computed = arena.DoraScale[1];
        using var refilledShift = arena.DoraShift[2];
        using var computedShift = arena.DoraShift[1];
        Assert.True(arena.IsDora[2]);
        Assert.Equal(computed.data<float>().ToArray(), refilled.data<float>().ToArray());
        Assert.Equal(computedShift.data<float>().ToArray(), refilledShift.data<float>().ToArray());
    }

    [Fact]
    public void Load_StridedBaseWeight_LibtorchPathAgreesWithNativePath()
    {
        using var weight = tensor(Random(Out * In, 31), [Out, In]);
        using var transposed = weight.t().contiguous();
        using var strided = transposed.t();                                  // the same values, not contiguous: libtorch's path
        using var bias = tensor(Random(Out, 32));
        Assert.False(strided.is_contiguous());
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.Float32, CPU);
        using var other = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.Float32, CPU);
        var module = Dora(33);

        arena.Load(0, module, () => (weight.alias(), bias.alias()));
        other.Load(0, module, () => (strided.alias(), bias.alias()));

        using var a = arena.DoraScale[0];
        using var b = other.DoraScale[0];
        using var sa = arena.DoraShift[0];
        using var sb = other.DoraShift[0];
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 0), "g differs between the native and the libtorch path");
        Assert.True(sa.allclose(sb, rtol: 1e-5, atol: 1e-7), "the shift differs between the native and the libtorch path");
    }

    [Fact]
    public void Apply_RawAndLibtorchBranches_ScaleOnlyTheDoraSlotsRows()
    {
        using var weight = tensor(Random(Out * In, 3), [Out, In]);
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.Float32, CPU);
        arena.Load(2, Dora(4), () => (weight.alias(), null));
        arena.Load(0, Dora(5) with { Magnitude = null });
        var mapping = LoraBatchMapping.ForSequences([1, 1, 1, 1], [[(2, 1f)], [(0, 1f)], [], [(2, 1f)]]);
        var values = Random(4 * Out, 6);
        using var contiguous = tensor(values, [4, Out]);
        using var wide = zeros([4, Out + 3]);
        using var strided = wide.narrow(1, 2, Out);
        strided.copy_(contiguous);
        Assert.False(strided.is_contiguous());

        DoraScaling.Apply(contiguous, [arena], mapping);          // raw memory
        DoraScaling.Apply(strided, [arena], mapping);             // gathered libtorch ops
        using var g = arena.DoraScale[2];
        var scale = g.data<float>().ToArray();
        var raw = contiguous.data<float>().ToArray();
        using var stridedCopy = strided.contiguous();
        var gathered = stridedCopy.data<float>().ToArray();
        for (int t = 0; t < 4; t++)
            for (int o = 0; o < Out; o++)
            {
                float expected = t is 0 or 3 ? values[t * Out + o] * scale[o] : values[t * Out + o];
                Assert.Equal(expected, raw[t * Out + o], 5);
                Assert.Equal(expected, gathered[t * Out + o], 5);
            }
    }

    [Fact]
    public void ApplyRaw_Bfloat16Rows_ScaledInFloat32AndRoundedOnce()
    {
        using var weight = tensor(Random(Out * In, 3), [Out, In]).to(ScalarType.BFloat16);
        using var arena = new LoraModuleArena(0, LoraTarget.Q, Slots, Rank, In, Out, ScalarType.BFloat16, CPU);
        arena.Load(1, Dora(8), () => (weight.alias(), null));
        var mapping = LoraBatchMapping.ForSequences([1, 1], [[(1, 1f)], []]);
        var values = Random(2 * Out, 9);
        using var y = tensor(values, [2, Out]).to(ScalarType.BFloat16);
        using var before = y.to(ScalarType.Float32);
        var input = before.data<float>().ToArray();
        for (int call = 0; call < 2; call++)                                // the second call reuses the per-thread row
        {
            using var rows = y.clone();
            DoraScaling.Apply(rows, [arena], mapping);
            using var after = rows.to(ScalarType.Float32);
            using var g = arena.DoraScale[1];
            var scale = g.data<float>().ToArray();
            var result = after.data<float>().ToArray();
            for (int o = 0; o < Out; o++)
            {
                Assert.Equal((float)(BitConverter.UInt32BitsToSingle(Bf16(input[o] * scale[o]) << 16)), result[o]);
                Assert.Equal(input[Out + o], result[Out + o]);              // the base row is untouched
            }
        }
    }

    /// <summary>float32 → bfloat16 bits, round to nearest even.</summary>
    private static uint Bf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16;
    }
}
