using Serving.Contracts.Generation;
using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Generation;

/// <summary>
/// Prompt scoring (<see cref="SamplingParams.PromptLogprobs"/>) against the log-softmax of a plain forward over the whole
/// prompt, whole and fed in chunks beside another sequence, and without changing what the sequence generates.
/// </summary>
[Collection(TinyModelCollection.Name)]
public sealed class PromptScoringTests(TinyModelFixture fixture)
{
    private const string Prompt = "The quick brown fox jumps over the lazy dog and keeps running";

    private SequenceState NewSequence(string prompt, SamplingParams p) =>
        new(fixture.Loaded.Tokenizer.Encode(prompt), p, fixture.Loaded.Tokenizer, fixture.Loaded.EosTokenIds);

    /// <summary>log_softmax of every prompt position's logits from one forward over the prompt alone: <c>[P, vocab]</c>.</summary>
    private float[][] ReferenceLogprobs(IReadOnlyList<int> prompt)
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        using var scope = NewDisposeScope();
        using var inference = no_grad();
        var batch = ForwardBatch.Create([(cache.Partition(0), prompt, 0)]);
        var logprobs = fixture.Loaded.Model.Forward(batch, cache, LogitsSelection.AllTokens).log_softmax(-1).cpu();
        return Enumerable.Range(0, prompt.Count).Select(i => logprobs[i].data<float>().ToArray()).ToArray();
    }

    private static void AssertScores(float[][] reference, IReadOnlyList<int> prompt, IReadOnlyList<PromptTokenLogprob?> scores, int top)
    {
        Assert.Equal(prompt.Count, scores.Count);
        Assert.Null(scores[0]);
        for (int p = 1; p < prompt.Count; p++)
        {
            var row = reference[p - 1];
            var score = scores[p]!;
            Assert.Equal(prompt[p], score.Id);
            Assert.Equal(row[prompt[p]], score.Logprob, 4);
            Assert.Equal(1 + row.Count(l => l > row[prompt[p]]), score.Rank);
            var best = row.Select((l, id) => (l, id)).OrderByDescending(x => x.l).Take(top).Select(x => x.id).ToArray();
            Assert.Equal(best, score.TopLogprobs.Select(t => t.Id).ToArray());
            for (int k = 0; k < top; k++)
                Assert.Equal(row[best[k]], score.TopLogprobs[k].Logprob, 4);
        }
    }

    [Fact]
    public void Run_PromptLogprobs_EqualTheLogSoftmaxOfAPlainForward()
    {
        var p = new SamplingParams { Temperature = 0, MaxTokens = 4, IgnoreEos = true, PromptLogprobs = 3 };
        var scored = NewSequence(Prompt, p);
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var first = stepper.RunAll([scored])[0]!;
        AssertScores(ReferenceLogprobs(scored.PromptTokens), scored.PromptTokens, first.PromptLogprobs!, 3);

        while (!scored.IsFinished)
            Assert.Null(stepper.RunAll([scored])[0]!.PromptLogprobs);     // only the first event carries them
        var plain = NewSequence(Prompt, p with { PromptLogprobs = null });
        while (!plain.IsFinished)
            Assert.Null(stepper.RunAll([plain], 1)[0]!.PromptLogprobs);
        Assert.Equal(plain.GeneratedTokens, scored.GeneratedTokens);
    }

    [Fact]
    public void Run_PromptScoredInChunksBesideADecodingSequence_SameScores()
    {
        var p = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true };
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var running = NewSequence("short", p);
        stepper.RunAll([running]);
        var scored = NewSequence(Prompt, p with { PromptLogprobs = 0 });
        TokenEvent? first = null;
        for (int cached = 0; first is null;)
        {
            int chunk = Math.Min(5, scored.TotalTokens - cached);
            var events = stepper.Run([new StepRow(running, running.TotalTokens - 1, 1, cache.Partition(0)), new StepRow(scored, cached, chunk, cache.Partition(1))]);
            Assert.NotNull(events[0]);
            first = events[1];
            cached += chunk;
        }

        AssertScores(ReferenceLogprobs(scored.PromptTokens), scored.PromptTokens, first.PromptLogprobs!, 0);
    }
}
