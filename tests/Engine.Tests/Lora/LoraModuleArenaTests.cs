using Serving.Contracts.Lora;
using Serving.Engine.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Lora;

public sealed class LoraModuleArenaTests
{
    /// <summary>
    /// A temporary tensor left to the finalizer is not just a delayed free: when it is only the receiver of a native call
    /// (<c>A[slot].narrow(...)</c>), a collection during that call can finalize it and free its native tensor while
    /// libtorch still reads it (seen as a segfault in libtorch's narrow while adapters were loading). Load must own and
    /// dispose every tensor it creates.
    /// </summary>
    [Fact]
    public void Load_ManyAdapters_LeavesNoTensorToTheFinalizer()
    {
        const int slots = 4, rank = 8, inF = 64, outF = 48;
        using var arena = new LoraModuleArena(0, LoraTarget.Q, slots, rank, inF, outF, ScalarType.Float32, CPU);
        LoraModuleWeights Weights(float value) =>
            new(0, LoraTarget.Q, rank, 1f, Enumerable.Repeat(value, rank * inF).ToArray(), Enumerable.Repeat(value + 1, outF * rank).ToArray());
        arena.Load(0, Weights(0));
        long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 100; i++)
            arena.Load(i % slots, Weights(i));
        Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

        using var slotA = arena.A[99 % slots];
        using var slotBt = arena.Bt[99 % slots];
        Assert.Equal(99f, slotA.max().item<float>());
        Assert.Equal(100f, slotBt.min().item<float>());
    }

    private static LoraModuleWeights RandomWeights(int rank, int inF, int outF, int seed)
    {
        var random = new Random(seed);
        float Next() => (float)(random.NextDouble() * 2 - 1) / 3;   // thirds need rounding in bf16
        return new(0, LoraTarget.Q, rank, 1f, [.. Enumerable.Range(0, rank * inF).Select(_ => Next())], [.. Enumerable.Range(0, outF * rank).Select(_ => Next())]);
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("bfloat16")]
    public void Load_OnCpu_SlotHoldsAAndBTransposedRoundedAsLibtorchRoundsThem(string dtypeName)
    {
        var dtype = dtypeName == "float32" ? ScalarType.Float32 : ScalarType.BFloat16;
        const int slots = 3, maxRank = 8, rank = 6, inF = 40, outF = 24;
        using var arena = new LoraModuleArena(0, LoraTarget.Q, slots, maxRank, inF, outF, dtype, CPU);
        var w = RandomWeights(rank, inF, outF, 5);

        arena.Load(1, w);

        using var expectedA = tensor(w.A, [rank, inF]).to(dtype);
        using var expectedBt = tensor(w.B, [outF, rank]).t().to(dtype);
        using var slotA = arena.A[1];
        using var slotBt = arena.Bt[1];
        using var a = slotA.narrow(0, 0, rank);
        using var bt = slotBt.narrow(0, 0, rank);
        Assert.True(a.equal(expectedA).all().item<bool>());
        Assert.True(bt.equal(expectedBt).all().item<bool>());
        using var restA = slotA.narrow(0, rank, maxRank - rank);
        using var restBt = slotBt.narrow(0, rank, maxRank - rank);
        Assert.Equal(0, restA.count_nonzero().item<long>());
        Assert.Equal(0, restBt.count_nonzero().item<long>());
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("bfloat16")]
    public void Load_SmallerRankAfterLarger_RowsBeyondTheNewRankZeroAndOtherSlotsUntouched(string dtypeName)
    {
        var dtype = dtypeName == "float32" ? ScalarType.Float32 : ScalarType.BFloat16;
        const int slots = 3, maxRank = 8, inF = 40, outF = 24;
        using var arena = new LoraModuleArena(0, LoraTarget.Q, slots, maxRank, inF, outF, dtype, CPU);
        arena.Load(0, RandomWeights(maxRank, inF, outF, 1));
        arena.Load(2, RandomWeights(maxRank, inF, outF, 2));
        using var before0 = arena.A[0].clone();
        using var before2 = arena.Bt[2].clone();

        arena.Load(1, RandomWeights(maxRank, inF, outF, 3));
        arena.Load(1, RandomWeights(3, inF, outF, 4));

        using var slotA = arena.A[1];
        using var slotBt = arena.Bt[1];
        using var restA = slotA.narrow(0, 3, maxRank - 3);
        using var restBt = slotBt.narrow(0, 3, maxRank - 3);
        Assert.Equal(0, restA.count_nonzero().item<long>());
        Assert.Equal(0, restBt.count_nonzero().item<long>());
        using var after0 = arena.A[0];
        using var after2 = arena.Bt[2];
        Assert.True(after0.equal(before0).all().item<bool>());
        Assert.True(after2.equal(before2).all().item<bool>());

        arena.Clear(1);
        using var cleared = arena.A[1];
        Assert.Equal(0, cleared.count_nonzero().item<long>());
    }
}
