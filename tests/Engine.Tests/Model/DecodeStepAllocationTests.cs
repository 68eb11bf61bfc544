using Serving.Authoring.Synthetic;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// A decode step's managed allocations on the thread that runs it: none in proportion to the context (the step's row
/// tables live in reused host arrays) and, on the fused CPU path, only a few small objects (the kernels' parallel regions
/// run on structs, not closures). Counted bytes, not time: the count is the same on every run of the same build.
/// </summary>
public sealed class DecodeStepAllocationTests : IDisposable
{
    private static readonly int[][] Prompts = [[464, 2068, 786, 2183], [40, 1101, 257], [1549, 11, 995, 7, 8], [3, 318]];

    /// <summary>
    /// The fused path's whole step at four rows, measured at 664 bytes on the machine that wrote this (the step's few tensor
    /// objects, the index object, the logits); about twice that leaves room for another runtime's object sizes, not for a
    /// closure per kernel call (the step made about 50, 20 KB at four rows, before regions ran on structs).
    /// </summary>
    private const long FusedStepBytes = 1536;

    private readonly string _root = TestDirectories.Create("decode-step-allocation");

    [Fact]
    public void Forward_DecodeStepsAtShortAndLongContext_AllocateTheSameManagedBytes()
    {
        string dir = Path.Combine(_root, "model");
        SyntheticModelWriter.Write(dir, TileGridModel.Spec(seed: 31));
        using var loaded = LoadedModel.Load(dir, ScalarType.BFloat16, CPU, 512);
        var model = loaded.Model;
        using var inference = no_grad();
        using var cache = model.CreateKvCache(Prompts.Length, 512);
        var kv = Prompts.Select((_, i) => cache.Partition(i)).ToList();
        using (model.Forward(ForwardBatch.Create(Prompts.Select((p, i) => (kv[i], (IReadOnlyList<int>)p, 0)).ToList()), cache, LogitsSelection.LastTokenPerSequence))
        {
        }

        int step = 0;
        // The median step: a scratch buffer that grows by doubling allocates on a few steps in a context's life (which ones
        // depends on which team thread ran which part); only an allocation on most steps moves the median.
        long BytesPerStep(int steps)
        {
            var bytes = new long[steps];
            for (int s = 0; s < steps; s++, step++)
            {
                // Rows of different lengths: the libtorch path's mask is built too.
                var batch = ForwardBatch.Create(Prompts.Select((p, i) => (kv[i], (IReadOnlyList<int>)new[] { 100 + step % 50 + i }, p.Length + step)).ToList());
                long before = GC.GetAllocatedBytesForCurrentThread();
                model.Forward(batch, cache, LogitsSelection.LastTokenPerSequence).Dispose();
                bytes[s] = GC.GetAllocatedBytesForCurrentThread() - before;
            }

            Array.Sort(bytes);
            return bytes[steps / 2];
        }

        BytesPerStep(8);                                   // first calls: the JIT's and the kernels' one-time set-up
        long shortContext = BytesPerStep(16);              // contexts of about 20 tokens
        BytesPerStep(400);
        long longContext = BytesPerStep(16);               // about 430 tokens: a row table of 4 × 430 longs if it were allocated

        Assert.True(longContext <= shortContext + 64, $"a step allocates {shortContext} bytes at ~20 tokens of context and {longContext} at ~430 (medians)");
        if (model.FusedDecodeSteps > 0)
            Assert.True(longContext <= FusedStepBytes, $"a fused decode step allocates {longContext} managed bytes (median; bound {FusedStepBytes})");
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
