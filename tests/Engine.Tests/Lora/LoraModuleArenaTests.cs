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
}
