using Serving.Engine.Kernels;
using Serving.Authoring.Synthetic;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using TorchSharp;
using static TorchSharp.torch;
using Serving.Contracts.Generation;

namespace Serving.Engine.Tests.Generation;

[Collection(nameof(GenerationMemoryTests))]
public sealed class GenerationMemoryTests
{
    /// <param name="cpuKernels">False: libtorch ops only (the CUDA path), which builds the decode row and mask tensors.</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Step_ThousandDecodeSteps_LiveTensorCountAndMemoryStayFlat(bool cpuKernels) =>
        AssertFlat(new SyntheticModelSpec { Seed = 11 }, ScalarType.Float32, cpuKernels);

    /// <summary>A bf16 model on the AMX grid: on an AMX machine its decode steps run the fused path and its reused workspace.</summary>
    [Fact]
    public void Step_ThousandFusedBf16DecodeSteps_LiveTensorCountAndMemoryStayFlat() =>
        AssertFlat(TileGridModel.Spec(seed: 11), ScalarType.BFloat16, cpuKernels: true);

    private static void AssertFlat(SyntheticModelSpec spec, ScalarType dtype, bool cpuKernels)
    {
        string dir = TestDirectories.Create("leak");
        try
        {
            SyntheticModelWriter.Write(dir, spec);
            using var loaded = LoadedModel.Load(dir, dtype, CPU, 2048, kernels: new KernelOptions { CpuDecodeAttention = cpuKernels, CpuElementwise = cpuKernels });
            using var cache = loaded.Model.CreateKvCache(2, 1100);
            var stepper = new GenerationStepper(loaded.Model, cache);
            // Two sequences of different lengths, so decode steps need a length mask on the libtorch path.
            var sequences = new[] { "x", "x y z" }.Select(p => new SequenceState(loaded.Tokenizer.Encode(p),
                new SamplingParams { Temperature = 0.8, Seed = 5, MaxTokens = 1000, IgnoreEos = true }, loaded.Tokenizer, loaded.EosTokenIds)).ToList();
            int steps = 0;
            long liveAtWarm = 0, rssAtWarm = 0;
            while (sequences.Any(s => !s.IsFinished))
            {
                stepper.RunAll(sequences);
                if (++steps == 100)
                {
                    GC.Collect();
                    liveAtWarm = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                    rssAtWarm = Environment.WorkingSet;
                }
            }

            GC.Collect();
            Assert.Equal(1000, steps);
            if (dtype == ScalarType.BFloat16 && Serving.Engine.Kernels.AmxNative.IsAvailable)
                Assert.Equal(999, loaded.Model.FusedDecodeSteps);
            Assert.Equal(liveAtWarm, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            long growth = Environment.WorkingSet - rssAtWarm;
            Assert.True(growth < 32L << 20, $"working set grew by {growth >> 20} MiB over 900 steps");
        }
        finally
        {
            TestDirectories.Delete(dir);
        }
    }
}
