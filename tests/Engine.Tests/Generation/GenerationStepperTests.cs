using Serving.Engine.Generation;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using TorchSharp;
using Serving.Contracts.Generation;

namespace Serving.Engine.Tests.Generation;

[Collection(TinyModelCollection.Name)]
public sealed class GenerationStepperTests(TinyModelFixture fixture)
{
    private SequenceState NewSequence(string prompt, SamplingParams p) =>
        new(fixture.Loaded.Tokenizer.Encode(prompt), p, fixture.Loaded.Tokenizer, fixture.Loaded.EosTokenIds);

    private static List<int> RunToEnd(GenerationStepper stepper, params SequenceState[] sequences)
    {
        while (sequences.Any(s => !s.IsFinished))
            stepper.RunAll(sequences);
        return sequences[0].GeneratedTokens.ToList();
    }

    [Fact]
    public void Run_SameSeed_ReproducesTokens()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(4, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 1.0, TopP = 0.9, Seed = 1234, MaxTokens = 12, IgnoreEos = true };
        var first = RunToEnd(stepper, NewSequence("Once upon a time", p));
        var second = RunToEnd(stepper, NewSequence("Once upon a time", p));
        var other = RunToEnd(stepper, NewSequence("Once upon a time", p with { Seed = 99 }));
        Assert.Equal(12, first.Count);
        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
    }

    [Fact]
    public void Run_BatchedGreedy_EqualsAlone()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(4, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 10, IgnoreEos = true };
        string[] prompts = ["Hello", "The capital of France is a city that", "1 2 3"];
        var alone = prompts.Select(t => RunToEnd(stepper, NewSequence(t, p))).ToList();
        var together = prompts.Select(t => NewSequence(t, p)).ToArray();
        RunToEnd(stepper, together);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(alone[i], together[i].GeneratedTokens);
    }

    /// <summary>Rows are sampled in parallel; each with its own seed must draw exactly what it draws alone, logprobs included.</summary>
    [Fact]
    public void Run_BatchedSeededSampling_EqualsAlone()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(8, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        string[] prompts = ["Hello", "The capital of France is a city that", "1 2 3", "Once upon", "abc def", "Tell me"];
        SamplingParams Params(int i) => new() { Temperature = 0.7 + 0.1 * i, TopP = i % 2 == 0 ? 0.9 : 1, TopK = i == 3 ? 20 : 0,
            Seed = (ulong)(100 + i), MaxTokens = 10, IgnoreEos = true, Logprobs = i == 1 ? 3 : null };
        var alone = prompts.Select((t, i) => NewSequence(t, Params(i))).ToArray();
        var aloneEvents = alone.Select(seq =>
        {
            var events = new List<TokenEvent>();
            while (!seq.IsFinished)
                events.AddRange(stepper.RunAll([seq]).OfType<TokenEvent>());
            return events;
        }).ToList();
        var together = prompts.Select((t, i) => NewSequence(t, Params(i))).ToArray();
        var togetherEvents = prompts.Select(_ => new List<TokenEvent>()).ToArray();
        while (together.Any(seq => !seq.IsFinished))
        {
            var active = Enumerable.Range(0, together.Length).Where(i => !together[i].IsFinished).ToArray();
            var events = stepper.RunAll(together);       // one entry per unfinished sequence, in order
            for (int e = 0; e < events.Count; e++)
                if (events[e] is TokenEvent ev)
                    togetherEvents[active[e]].Add(ev);
        }

        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(alone[i].GeneratedTokens, together[i].GeneratedTokens);
            // Logprobs agree up to the batched forward pass's float32 summation order.
            var expected = aloneEvents[i].SelectMany(e => e.Token.TopLogprobs.Select(t => (t.Id, t.Logprob)).Prepend((e.Token.Id, e.Token.Logprob))).ToList();
            var actual = togetherEvents[i].SelectMany(e => e.Token.TopLogprobs.Select(t => (t.Id, t.Logprob)).Prepend((e.Token.Id, e.Token.Logprob))).ToList();
            Assert.Equal(expected.Select(t => t.Id), actual.Select(t => t.Id));
            Assert.All(expected.Zip(actual), p => Assert.Equal(p.First.Logprob, p.Second.Logprob, 1e-4));
        }
    }

    /// <summary>A step that throws advances no sequence, so its rows can run again apart (what the server does then).</summary>
    [Fact]
    public void Run_OneRowFails_NoSequenceAdvancesNoTimingsRecordedAndTheOthersRunOnAloneAsBefore()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(4, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var p = new SamplingParams { Temperature = 0, MaxTokens = 6, IgnoreEos = true };
        var expected = RunToEnd(stepper, NewSequence("The capital of France is", p));
        var good = NewSequence("The capital of France is", p);
        var goodKv = cache.Partition(1);
        stepper.Run([new StepRow(good, 0, good.TotalTokens, goodKv)]);
        var timings = stepper.LastTimings;
        var bad = new SequenceState([5, fixture.Loaded.Config.VocabSize + 1], p, fixture.Loaded.Tokenizer, fixture.Loaded.EosTokenIds);

        Assert.ThrowsAny<ArgumentException>(() => stepper.Run([new StepRow(good, good.TotalTokens - 1, 1, goodKv), new StepRow(bad, 0, bad.TotalTokens, cache.Partition(2))]));

        Assert.True(timings.Forward > TimeSpan.Zero && timings.Sampling > TimeSpan.Zero);
        Assert.Equal(timings, stepper.LastTimings);          // a failed step records nothing
        Assert.Equal((1, 0), (good.GeneratedTokens.Count, bad.GeneratedTokens.Count));
        while (!good.IsFinished)
            stepper.Run([new StepRow(good, good.TotalTokens - 1, 1, goodKv)]);
        Assert.Equal(expected, good.GeneratedTokens);
    }

    [Fact]
    public void Run_RowBeyondTheSequence_ThrowsNamingThePositions()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var s = NewSequence("abc", new SamplingParams { Temperature = 0, MaxTokens = 3, IgnoreEos = true });

        var ex = Assert.Throws<ArgumentException>(() => stepper.Run([new StepRow(s, 1, s.TotalTokens, cache.Partition(0))]));

        Assert.Contains($"positions [1, {s.TotalTokens + 1})", ex.Message);
    }

    [Fact]
    public void Run_MaxTokens_FinishesWithLength()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var s = NewSequence("abc", new SamplingParams { Temperature = 0, MaxTokens = 3, IgnoreEos = true });
        var events = new List<TokenEvent>();
        while (!s.IsFinished)
            events.AddRange(stepper.RunAll([s]).OfType<TokenEvent>());
        Assert.Equal(3, events.Count);
        Assert.Equal(FinishReason.Length, events[^1].Finish);
        Assert.Equal(fixture.Loaded.Tokenizer.Decode(s.GeneratedTokens), string.Concat(events.Select(e => e.TextDelta)));
    }

    [Fact]
    public void Run_StopTokenId_FinishesWithStop()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var greedy = new SamplingParams { Temperature = 0, MaxTokens = 5, IgnoreEos = true };
        var probe = RunToEnd(stepper, NewSequence("Tell me", greedy));
        var s = NewSequence("Tell me", greedy with { StopTokenIds = [probe[2]] });
        RunToEnd(stepper, s);
        Assert.Equal(FinishReason.Stop, s.Finish);
        Assert.Equal(probe.Take(3), s.GeneratedTokens);
    }

    [Fact]
    public void Run_StopStringAcrossTokens_TruncatesText()
    {
        using var cache = fixture.Loaded.Model.CreateKvCache(1, 128);
        var stepper = new GenerationStepper(fixture.Loaded.Model, cache);
        var greedy = new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true };
        var probe = RunToEnd(stepper, NewSequence("Tell me", greedy));
        var tok = fixture.Loaded.Tokenizer;
        string full = tok.Decode(probe);
        string before = tok.Decode(probe.Take(3));
        string spanning = full.Substring(before.Length - 1, 2);   // last char of token 3 + first of token 4
        int cut = full.IndexOf(spanning, StringComparison.Ordinal);
        var s = NewSequence("Tell me", greedy with { StopStrings = [spanning] });
        var text = new System.Text.StringBuilder();
        while (!s.IsFinished)
            foreach (var e in stepper.RunAll([s]).OfType<TokenEvent>())
                text.Append(e.TextDelta);
        Assert.Equal(FinishReason.Stop, s.Finish);
        Assert.Equal(full[..cut], text.ToString());
    }

    [Fact]
    public void Run_PromptFedInChunks_SameTokensAsWholePromptsAndRunningStreamsKeepDecoding()
    {
        var p = new SamplingParams { Temperature = 0, MaxTokens = 8, IgnoreEos = true };
        string longPrompt = string.Concat(Enumerable.Repeat("a long prompt that takes several chunks ", 6));
        using var cache = fixture.Loaded.Model.CreateKvCache(4, 256);
        var whole = new GenerationStepper(fixture.Loaded.Model, cache);
        var expectedShort = RunToEnd(whole, NewSequence("short", p));
        var expectedLong = RunToEnd(whole, NewSequence(longPrompt, p));

        var chunked = new GenerationStepper(fixture.Loaded.Model, cache);
        var running = NewSequence("short", p);
        chunked.RunAll([running]);                                  // prefill (2 tokens), first token
        var late = NewSequence(longPrompt, p);
        int stepsWhileLongPrefills = 0, lateCached = 0;
        while (late.GeneratedTokens.Count == 0)
        {
            // The rows a scheduler with a 7-token prefill budget plans: the running stream decodes, the prompt advances ≤ 7.
            int chunk = Math.Min(7, late.TotalTokens - lateCached);
            var events = chunked.Run([new StepRow(running, running.TotalTokens - 1, 1, cache.Partition(0)), new StepRow(late, lateCached, chunk, cache.Partition(1))]);
            lateCached += chunk;
            Assert.NotNull(events[0]);                            // the running stream gets a token every step
            stepsWhileLongPrefills++;
        }

        Assert.True(stepsWhileLongPrefills >= late.PromptTokens.Count / 7, $"prompt of {late.PromptTokens.Count} tokens took {stepsWhileLongPrefills} steps");
        while (!running.IsFinished || !late.IsFinished)
            chunked.RunAll([running, late]);
        Assert.Equal(expectedShort, running.GeneratedTokens);
        Assert.Equal(expectedLong, late.GeneratedTokens);
    }
}
