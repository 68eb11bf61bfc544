using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Generation;

/// <summary>
/// A prompt's embedding (<see cref="SamplingParams.EmbedPrompt"/>): its last token's final hidden state, equal to the
/// scalar reference's, whether the prompt runs whole or in chunks beside a generating sequence, and only on the event
/// that completes the prompt.
/// </summary>
[Collection(TinyModelCollection.Name)]
public sealed class PromptEmbeddingTests(TinyModelFixture fixture)
{
    private const string Prompt = "The quick brown fox jumps over the lazy dog and keeps running";

    private SequenceState NewSequence(string prompt, SamplingParams p) =>
        new(fixture.Loaded.Tokenizer.Encode(prompt), p, fixture.Loaded.Tokenizer, fixture.Loaded.EosTokenIds);

    private void AssertReference(IReadOnlyList<int> prompt, IReadOnlyList<float> embedding)
    {
        var expected = new ScalarReferenceModel(fixture.Directory).Hidden(prompt)[^1];
        Assert.Equal(expected.Length, embedding.Count);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - embedding[i]) <= 1e-4, $"dimension {i}: {embedding[i]}, reference {expected[i]}");
    }

    [Fact]
    public void Run_EmbedPromptWhole_LastTokensFinalHiddenState()
    {
        var embedded = NewSequence(Prompt, new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true });
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var first = new GenerationStepper(fixture.Loaded.Model, cache).RunAll([embedded])[0]!;

        AssertReference(embedded.PromptTokens, first.Embedding!);
        Assert.Equal(FinishReason.Length, first.Finish);
    }

    [Fact]
    public void Step_EmbedPromptInChunksBesideAGeneratingSequence_SameEmbeddingOnlyWhenThePromptCompletes()
    {
        var embedded = NewSequence(Prompt, new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true });
        var generating = NewSequence("Hello there", new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true });
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        int n = embedded.PromptTokens.Count, half = n / 2;
        var events = stepper.Step([new StepRow(embedded, 0, half, cache.Partition(0)), new StepRow(generating, 0, generating.TotalTokens, cache.Partition(1))]);
        Assert.Empty(events[0]);
        Assert.Null(Assert.Single(events[1]).Embedding);

        events = stepper.Step([new StepRow(generating, generating.TotalTokens - 1, 1, cache.Partition(1)), new StepRow(embedded, half, n - half, cache.Partition(0))]);

        Assert.Null(Assert.Single(events[0]).Embedding);
        AssertReference(embedded.PromptTokens, Assert.Single(events[1]).Embedding!);
    }
}
