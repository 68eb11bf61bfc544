using Serving.Authoring.Synthetic;
using Serving.Contracts;
using Serving.Contracts.Generation;
using Serving.Contracts.Lora;
using Serving.Engine.Generation;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Generation;

/// <summary>
/// Drafts on a model the fused CPU decode path takes (bf16, float32, int8; with adapters): each draft is a decode row of its
/// own, so a verifying step runs on that path too, and greedy tokens are those of steps without drafts.
/// </summary>
public sealed class SpeculativeCpuDecodeTests : IDisposable
{
    private readonly string _root = TestDirectories.Create("speculative-cpu-decode");

    public void Dispose() => TestDirectories.Delete(_root);

    [Theory]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void Step_OracleDraftsWithAdapters_GreedyTokensOfPlainStepsOnTheFusedPath(ScalarType dtype, bool int8)
    {
        string dir = Path.Combine(_root, "model");
        if (!Directory.Exists(dir))
            SyntheticModelWriter.Write(dir, TileGridModel.Spec(seed: 41));
        using var loaded = LoadedModel.Load(dir, dtype, CPU, 256,
            quantization: int8 ? Engine.Quantization.WeightQuantization.Int8 : Engine.Quantization.WeightQuantization.None);
        var arena = loaded.Model.EnableAdapters(slots: 2, maxRank: 8);
        arena.Load(1, RandomAdapters.Create(loaded.Config, "a", 8, LoraTargets.All, 1, scale: 2.0f));
        using var cache = loaded.Model.CreateKvCache(4, 128);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 30, IgnoreEos = true };
        IReadOnlyList<AdapterSlotWeight>[] adapters = [[], [(1, 1f)]];
        int[][] prompts = [[464, 2068, 786, 2183], [40, 1101, 257, 1332, 13]];

        var truths = new List<List<int>>();
        for (int i = 0; i < 2; i++)
        {
            var s = new SequenceState(prompts[i], p, loaded.Tokenizer, [], adapters[i]);
            stepper.Step([new StepRow(s, 0, s.TotalTokens, cache.Partition(i))]);
            while (!s.IsFinished)
                stepper.Step([new StepRow(s, s.TotalTokens - 1, 1, cache.Partition(i))]);
            truths.Add([.. s.GeneratedTokens]);
        }

        Assert.NotEqual(truths[0], truths[1]);
        var both = prompts.Select((t, i) => new SequenceState(t, p, loaded.Tokenizer, [], adapters[i])).ToArray();
        stepper.Step([.. both.Select((s, i) => new StepRow(s, 0, s.TotalTokens, cache.Partition(2 + i)))]);
        long fusedBefore = loaded.Model.FusedDecodeSteps;
        int steps = 0;
        while (both.Any(s => !s.IsFinished))
        {
            stepper.Step([.. both.Select((s, i) => (s, i)).Where(x => !x.s.IsFinished).Select(x => new StepRow(x.s, x.s.TotalTokens - 1, 1, cache.Partition(2 + x.i),
                [.. truths[x.i].Skip(x.s.GeneratedTokens.Count).Take(Math.Min(3, 29 - x.s.GeneratedTokens.Count))]))]);
            steps++;
        }

        Assert.Equal(truths[0], both[0].GeneratedTokens);
        Assert.Equal(truths[1], both[1].GeneratedTokens);
        Assert.InRange(steps, 1, 8);
        bool fusedHardware = VectorExp.IsSupported && DecodeAttentionScores.Supports(TileGridModel.Preset.Hidden / TileGridModel.Preset.Heads)
            && (int8 || SmallBatchGemv.IsAvailable || dtype == ScalarType.BFloat16 && AmxNative.IsAvailable);
        Assert.Equal(fusedHardware ? steps : 0, loaded.Model.FusedDecodeSteps - fusedBefore);
    }
}
