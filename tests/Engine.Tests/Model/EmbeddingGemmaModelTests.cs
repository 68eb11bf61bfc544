using Serving.Authoring.Synthetic;
using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// EmbeddingGemma (<c>Gemma3TextModel</c>, <c>use_bidirectional_attention</c>): every prompt position attends to every
/// other within its layer's window on both sides (the sliding layers' window <c>sliding_window / 2 + 1</c>, as
/// transformers reads it) — each position's final state equal to the scalar reference's bidirectional forward, unlike the
/// causal model's; a prompt's mean-pooled embedding through the stepper; a chunk of a prompt refused.
/// </summary>
public sealed class EmbeddingGemmaModelTests : IDisposable
{
    private static readonly int[] Prompt = [464, 2068, 786, 2183, 40, 1101, 257, 1332, 13, 318, 262, 1266];
    private readonly string _root = TestDirectories.Create("embeddinggemma-model");
    private readonly string _dir;

    public EmbeddingGemmaModelTests() => _dir = Write(Path.Combine(_root, "embeddinggemma"), bidirectional: true);

    private static string Write(string dir, bool bidirectional)
    {
        EmbeddingGemmaCheckpoint.Write(dir, new SyntheticModelSpec { HeadDim = 32, Seed = 67 }, bidirectional);
        return dir;
    }

    private static double[][] States(LoadedModel loaded, int[] prompt)
    {
        using var cache = loaded.Model.CreateKvCache(1, 64);
        using var hidden = new HiddenStateCapture();
        using (loaded.Model.Forward(ForwardBatch.Create([(cache.Partition(0), prompt, 0)]), cache, LogitsSelection.AllTokens, hidden: hidden))
        {
        }

        return [.. Enumerable.Range(0, prompt.Length).Select(i => hidden.Row(i).Select(v => (double)v).ToArray())];
    }

    private static void AssertClose(double[] expected, IReadOnlyList<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Count);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4, $"{what}, dimension {i}: {actual[i]} against {expected[i]}");
    }

    [Fact]
    public void Load_EmbeddingGemmaConfig_BidirectionalEmbeddingModelOfHalvedWindow()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        Assert.True(loaded.Config.BidirectionalAttention);
        Assert.True(loaded.EmbeddingOnly);
        Assert.Equal(4, loaded.Config.WindowOf(0));
        Assert.Null(loaded.Config.WindowOf(1));
    }

    [Fact]
    public void Forward_WholePrompt_EveryPositionsStateTheBidirectionalReferences()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        var states = States(loaded, Prompt);
        var reference = new ScalarReferenceModel(_dir).Hidden(Prompt);
        for (int i = 0; i < Prompt.Length; i++)
            AssertClose(reference[i], [.. states[i].Select(v => (float)v)], $"position {i}");

        // The first position sees what follows it: the causal model's first state differs (a causal mask would pass neither check).
        using var causal = LoadedModel.Load(Write(Path.Combine(_root, "causal"), bidirectional: false), ScalarType.Float32, CPU, 64);
        Assert.True(States(causal, Prompt)[0].Zip(states[0], (a, b) => Math.Abs(a - b)).Max() > 1e-3);
    }

    [Fact]
    public void Step_MeanPooledWhole_TheReferencesMeanAndAChunkRefused()
    {
        using var loaded = LoadedModel.Load(_dir, ScalarType.Float32, CPU, 64);
        var sampling = new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true, Pooling = PromptPooling.Mean };
        using var cache = loaded.Model.CreateKvCache(2, 64);
        var stepper = new GenerationStepper(loaded.Model, cache);
        var chunked = new SequenceState(Prompt, sampling, loaded.Tokenizer, loaded.EosTokenIds);
        Assert.Throws<ArgumentException>(() => stepper.Step([new StepRow(chunked, 0, 5, cache.Partition(1))]));

        var whole = new SequenceState(Prompt, sampling, loaded.Tokenizer, loaded.EosTokenIds);
        var events = stepper.Step([new StepRow(whole, 0, Prompt.Length, cache.Partition(0))]);

        var reference = new ScalarReferenceModel(_dir).Hidden(Prompt);
        AssertClose([.. Enumerable.Range(0, reference[0].Length).Select(d => reference.Average(r => r[d]))], Assert.Single(events[0]).Embedding!, "mean");
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
