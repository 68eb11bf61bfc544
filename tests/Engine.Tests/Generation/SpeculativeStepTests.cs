using Serving.Engine.Generation;
using Serving.Engine.Model;
using Serving.Tests.Shared;
using Serving.Contracts.Generation;

namespace Serving.Engine.Tests.Generation;

/// <summary>
/// Rows with draft tokens (speculative decoding): one step verifies the drafts, and the tokens a sequence generates are the
/// ones it generates without drafts — greedy, seeded sampling, logprobs, constraints — only in fewer steps when drafts match.
/// </summary>
[Collection(TinyModelCollection.Name)]
public sealed class SpeculativeStepTests(TinyModelFixture fixture)
{
    private SequenceState NewSequence(string prompt, SamplingParams p, OutputConstraint? constraint = null) =>
        new(fixture.Loaded.Tokenizer.Encode(prompt), constraint is null ? p : p with { Constraint = constraint }, fixture.Loaded.Tokenizer,
            fixture.Loaded.EosTokenIds, constraint: constraint is null ? null : fixture.Loaded.Constraints.Compile(constraint));

    /// <summary>Runs a sequence to its end, alone, with the drafts <paramref name="propose"/> gives each decode step; returns its events and the steps taken.</summary>
    private static (List<TokenEvent> Events, int Steps) Generate(GenerationStepper stepper, SequenceState s, KvBlockTable kv, Func<SequenceState, int[]> propose)
    {
        var events = new List<TokenEvent>(stepper.Step([new StepRow(s, 0, s.TotalTokens, kv)])[0]);
        int steps = 1;
        while (!s.IsFinished)
        {
            var row = stepper.Step([new StepRow(s, s.TotalTokens - 1, 1, kv, propose(s))])[0];
            Assert.InRange(row.Count, 1, int.MaxValue);
            events.AddRange(row);
            steps++;
        }

        return (events, steps);
    }

    private static int[] Oracle(IReadOnlyList<int> truth, SequenceState s, int k) =>
        [.. truth.Skip(s.GeneratedTokens.Count).Take(Math.Min(k, s.Sampling.MaxTokens - s.GeneratedTokens.Count - 1))];

    [Theory]
    [InlineData(0.0, null)]
    [InlineData(0.9, 4242UL)]
    public void Step_DraftsOfTheTrueContinuation_SameTokensAndLogprobsInAFifthOfTheSteps(double temperature, ulong? seed)
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 256);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = temperature, TopP = 0.95, Seed = seed, MaxTokens = 41, IgnoreEos = true, Logprobs = 2 };
        var plain = Generate(stepper, NewSequence("Once upon a time", p), cache.Partition(0), _ => []);
        var truth = plain.Events.Select(e => e.Token.Id).ToList();

        var speculative = Generate(stepper, NewSequence("Once upon a time", p), cache.Partition(1), s => Oracle(truth, s, 4));

        Assert.Equal(41, plain.Steps);
        Assert.Equal(1 + 8, speculative.Steps);                 // the first token, then 8 steps of 5 tokens
        Assert.Equal(truth, speculative.Events.Select(e => e.Token.Id));
        Assert.Equal(plain.Events.Select(e => e.TextDelta), speculative.Events.Select(e => e.TextDelta));
        for (int i = 0; i < truth.Count; i++)
        {
            Assert.Equal(plain.Events[i].Token.Logprob, speculative.Events[i].Token.Logprob, 4);
            Assert.Equal(plain.Events[i].Token.TopLogprobs.Select(t => t.Id), speculative.Events[i].Token.TopLogprobs.Select(t => t.Id));
        }

        Assert.Equal(FinishReason.Length, speculative.Events[^1].Finish);
    }

    [Fact]
    public void Step_WrongDrafts_OneTokenAStepAndTheSameTokens()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 256);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 16, IgnoreEos = true };
        var plain = Generate(stepper, NewSequence("The capital of France", p), cache.Partition(0), _ => []);
        var truth = plain.Events.Select(e => e.Token.Id).ToList();
        int vocab = fixture.Loaded.Model.Config.VocabSize;

        var wrong = Generate(stepper, NewSequence("The capital of France", p), cache.Partition(1),
            s => [(truth[s.GeneratedTokens.Count] + 1) % vocab, 3, 4]);

        Assert.Equal(16, wrong.Steps);
        Assert.Equal(truth, wrong.Events.Select(e => e.Token.Id));
    }

    [Fact]
    public void Step_DraftsFromAnEditedPrediction_SameGreedyTokensInFewerSteps()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 512);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 120, IgnoreEos = true };
        var plain = Generate(stepper, NewSequence("Rewrite this", p), cache.Partition(0), _ => []);
        var truth = plain.Events.Select(e => e.Token.Id).ToList();
        // The prediction a client would send: the output with a few tokens changed, one dropped and one inserted.
        var prediction = truth.ToList();
        prediction[20] = 11;
        prediction[55] = 12;
        prediction.RemoveAt(80);
        prediction.Insert(100, 13);
        var buffer = new int[4];

        var predicted = Generate(stepper, NewSequence("Rewrite this", p), cache.Partition(1), s =>
        {
            int[] all = [.. s.PromptTokens, .. s.GeneratedTokens];
            int room = Math.Min(buffer.Length, s.Sampling.MaxTokens - s.GeneratedTokens.Count - 1);
            int n = NgramProposer.FromPrediction(all, [.. prediction], s.GeneratedTokens.Count, 1, 3, buffer.AsSpan(0, room));
            return buffer[..n];
        });

        Assert.Equal(truth, predicted.Events.Select(e => e.Token.Id));
        Assert.True(predicted.Steps < plain.Steps / 3, $"{predicted.Steps} steps with the prediction, {plain.Steps} without");
    }

    [Fact]
    public void Step_ConstrainedRowWithDrafts_SameOutputAndStillMatchesTheConstraint()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 256);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0.8, Seed = 5, MaxTokens = 60 };
        var constraint = OutputConstraint.Regex("(ab|cd)+[0-9]{2,4}");
        var plain = Generate(stepper, NewSequence("Code:", p, constraint), cache.Partition(0), _ => []);
        var truth = plain.Events.Select(e => e.Token.Id).ToList();
        int vocab = fixture.Loaded.Model.Config.VocabSize;

        // Drafts right for two tokens, then wrong: every step accepts some and rejects the rest.
        var mixed = Generate(stepper, NewSequence("Code:", p, constraint), cache.Partition(1), s =>
        {
            var right = Oracle(truth, s, 2);
            return [.. right, (right.Length == 0 ? 0 : right[^1] + 7) % vocab];
        });

        Assert.Equal(truth, mixed.Events.Select(e => e.Token.Id));
        Assert.Matches("^(ab|cd)+[0-9]{2,4}$", string.Concat(mixed.Events.Select(e => e.TextDelta)));
        Assert.True(mixed.Steps < plain.Steps);
    }

    [Fact]
    public void Step_DraftsPastMaxTokensOrAStopToken_EndsWhereTheSequenceEnds()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(2, 256);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true };
        var plain = Generate(stepper, NewSequence("Hello there", p), cache.Partition(0), _ => []);
        var truth = plain.Events.Select(e => e.Token.Id).ToList();
        var stopAt = p with { MaxTokens = 50, StopTokenIds = [truth[3]] };
        int expected = truth.IndexOf(truth[3]) + 1;

        var s = NewSequence("Hello there", stopAt);
        var first = stepper.Step([new StepRow(s, 0, s.TotalTokens, cache.Partition(1))])[0];
        var rest = stepper.Step([new StepRow(s, s.TotalTokens - 1, 1, cache.Partition(1), [.. truth.Skip(1), 9, 9])])[0];

        Assert.True(s.IsFinished);
        Assert.Equal(FinishReason.Stop, s.Finish);
        Assert.Equal(truth.Take(expected), first.Concat(rest).Select(e => e.Token.Id));
    }

    [Fact]
    public void Step_RowWithDraftsBesideRowsWithout_EachRowAsAlone()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(4, 256);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 12, IgnoreEos = true };
        string[] prompts = ["Hello", "1 2 3 4", "Tell me a story"];
        var truths = prompts.Select((t, i) => Generate(stepper, NewSequence(t, p), cache.Partition(i), _ => []).Events.Select(e => e.Token.Id).ToList()).ToList();
        var sequences = prompts.Select(t => NewSequence(t, p)).ToArray();
        stepper.Step([.. sequences.Select((s, i) => new StepRow(s, 0, s.TotalTokens, cache.Partition(i)))]);
        int steps = 1;
        while (sequences.Any(s => !s.IsFinished))
        {
            // Row 0 gets the truth, row 1 nothing, row 2 a wrong draft.
            stepper.Step([.. sequences.Select((s, i) => (s, i)).Where(x => !x.s.IsFinished).Select(x => new StepRow(x.s, x.s.TotalTokens - 1, 1, cache.Partition(x.i),
                x.i == 0 ? Oracle(truths[0], x.s, 3) : x.i == 2 && x.s.GeneratedTokens.Count < 11 ? [(truths[2][x.s.GeneratedTokens.Count] + 1) % 100] : null))]);
            steps++;
        }

        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(truths[i], sequences[i].GeneratedTokens);
        Assert.Equal(12, steps);
    }

    [Fact]
    public void Step_DraftsBeyondTheContext_Throws()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 16);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var s = NewSequence("Hello", new SamplingParams { Temperature = 0, MaxTokens = 100, IgnoreEos = true });
        stepper.Step([new StepRow(s, 0, s.TotalTokens, cache.Partition(0))]);

        var ex = Assert.Throws<ArgumentException>(() => stepper.Step([new StepRow(s, s.TotalTokens - 1, 1, cache.Partition(0), [.. Enumerable.Repeat(5, 16 - s.TotalTokens + 1)])]));

        Assert.Contains("context limit", ex.Message);
        Assert.Throws<ArgumentException>(() => stepper.Run([new StepRow(s, s.TotalTokens - 1, 1, cache.Partition(0), [5])]));
    }
}
