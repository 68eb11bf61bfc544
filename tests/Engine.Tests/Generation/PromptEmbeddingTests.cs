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

    private void AssertReference(IReadOnlyList<int> prompt, IReadOnlyList<float> embedding, PromptPooling pooling = PromptPooling.LastToken)
    {
        var states = new ScalarReferenceModel(fixture.Directory).Hidden(prompt);
        double[] expected = pooling switch
        {
            PromptPooling.Mean => [.. Enumerable.Range(0, states[0].Length).Select(d => states.Average(s => s[d]))],
            PromptPooling.Cls => states[0],
            _ => states[^1],
        };
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

    [Theory]
    [InlineData(PromptPooling.Mean)]
    [InlineData(PromptPooling.Cls)]
    public void Run_PoolEveryPositionWhole_EqualsTheReferencesPooledStates(PromptPooling pooling)
    {
        var embedded = NewSequence(Prompt, new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true, Pooling = pooling });
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var first = new GenerationStepper(fixture.Loaded.Model, cache).RunAll([embedded])[0]!;

        AssertReference(embedded.PromptTokens, first.Embedding!, pooling);
    }

    /// <summary>
    /// A pooled prompt in three chunks, beside a generating sequence and a last-token embedding, pools what it does whole;
    /// a preempted one that computes its prompt again from position 0 starts its pool over.
    /// </summary>
    [Theory]
    [InlineData(PromptPooling.Mean)]
    [InlineData(PromptPooling.Cls)]
    public void Step_PoolEveryPositionInChunks_SameAsWholeAndStartsOverFromPositionZero(PromptPooling pooling)
    {
        var embedded = NewSequence(Prompt, new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true, Pooling = pooling });
        var last = NewSequence("Hello there", new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true });
        var generating = NewSequence("Hello there", new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true });
        using var cache = fixture.Loaded.Model.CreateKvCache(3, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        int n = embedded.PromptTokens.Count, third = n / 3;

        // A first pass over two chunks, then "preempted": the prompt is computed again from 0 in other chunks.
        stepper.Step([new StepRow(embedded, 0, third, cache.Partition(0))]);
        stepper.Step([new StepRow(embedded, third, third, cache.Partition(0))]);
        var events = stepper.Step([new StepRow(generating, 0, generating.TotalTokens, cache.Partition(1)), new StepRow(embedded, 0, 2, cache.Partition(0))]);
        Assert.Empty(events[1]);
        stepper.Step([new StepRow(embedded, 2, third, cache.Partition(0)), new StepRow(generating, generating.TotalTokens - 1, 1, cache.Partition(1))]);
        events = stepper.Step([new StepRow(last, 0, last.TotalTokens, cache.Partition(2)), new StepRow(embedded, 2 + third, n - 2 - third, cache.Partition(0)),
            new StepRow(generating, generating.TotalTokens - 1, 1, cache.Partition(1))]);

        AssertReference(embedded.PromptTokens, Assert.Single(events[1]).Embedding!, pooling);
        AssertReference(last.PromptTokens, Assert.Single(events[0]).Embedding!);
        Assert.Null(Assert.Single(events[2]).Embedding);
    }

    [Fact]
    public void Step_PooledChunkOutOfOrder_RefusedAndTheSequenceUnchanged()
    {
        var embedded = NewSequence(Prompt, new SamplingParams { Temperature = 0, MaxTokens = 1, EmbedPrompt = true, Pooling = PromptPooling.Mean });
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        stepper.Step([new StepRow(embedded, 0, 4, cache.Partition(0))]);
        Assert.Throws<InvalidOperationException>(() => stepper.Step([new StepRow(embedded, 5, embedded.PromptTokens.Count - 5, cache.Partition(0))]));
        var events = stepper.Step([new StepRow(embedded, 4, embedded.PromptTokens.Count - 4, cache.Partition(0))]);
        AssertReference(embedded.PromptTokens, Assert.Single(events[0]).Embedding!, PromptPooling.Mean);
    }
}
