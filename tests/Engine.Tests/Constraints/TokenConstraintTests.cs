using System.Text;
using System.Text.RegularExpressions;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>Token automata over the full GPT-2 vocabulary: masks against brute force, and random walks that must always end valid.</summary>
public sealed class TokenConstraintTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    private TokenConstraintCompiler NewCompiler() => new(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize + 13);

    public static TheoryData<string> Patterns =>
    [
        @"\d{3}-\d{4}",
        @"(yes|no|maybe)",
        @"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8})?",
        @"[α-ω]{2,5}€?",
        @"(\+|-)?[0-9]+(\.[0-9]{1,3})?",
        @"[^a-z\s]{1,6}",
        @"\w{1,8}@\w{1,8}\.(com|org)",
        @"(😀|ü){1,3}x",
        @"a.{0,10}b",
        @"[\D]{2}\S\W",
    ];

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Walk_Regex_EveryOutputFullyMatches(string pattern)
    {
        var constraint = NewCompiler().Compile(OutputConstraint.Regex(pattern));
        var random = new Random(pattern.Length);
        var check = new Regex($"^(?:{pattern})$");
        for (int i = 0; i < 40; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random);
            Assert.True(complete);
            string text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(output);
            Assert.True(constraint.Matches(text));
            // .NET's Regex counts UTF-16 units; the constraint, as Python's re, counts characters. For the check, an
            // astral character (outside every class these patterns name but negated ones and '.') becomes one BMP one.
            string units = string.Concat(text.EnumerateRunes().Select(r => r.IsBmp ? r.ToString() : pattern.Contains(r.ToString(), StringComparison.Ordinal) ? r.ToString() : "\uE000"));
            Assert.Matches(check, units);
        }
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void AllowedTokens_StatesOnWalks_EqualAdvancingEveryTokenAlone(string pattern)
    {
        var constraint = NewCompiler().Compile(OutputConstraint.Regex(pattern));
        var random = new Random(7);
        var states = new HashSet<int> { constraint.Start };
        for (int i = 0; i < 3; i++)
        {
            int state = constraint.Start;
            for (int step = 0; step < 6; step++)
            {
                var ids = ConstraintWalker.Ids(constraint.AllowedTokens(state));
                if (ids.Count == 0)
                    break;
                state = constraint.Advance(state, ids[random.Next(ids.Count)]);
                states.Add(state);
            }
        }

        foreach (int state in states)
        {
            var mask = constraint.AllowedTokens(state);
            for (int id = 0; id < gpt2.Tokenizer.VocabSize + 13; id++)
            {
                bool allowed = (mask[id >> 6] >> (id & 63) & 1) != 0;
                Assert.True(allowed == (constraint.Advance(state, id) != TokenConstraint.Dead), $"token {id} in state {state}");
            }
        }
    }

    [Fact]
    public void AllowedTokens_SpecialAndPaddingIds_NeverAllowed()
    {
        var constraint = NewCompiler().Compile(OutputConstraint.Regex(".{1,5}"));
        var ids = ConstraintWalker.Ids(constraint.AllowedTokens(constraint.Start));
        Assert.DoesNotContain(ids, id => id >= gpt2.Tokenizer.VocabSize || gpt2.Tokenizer.IsSpecial(id));
        Assert.Contains(ids, id => gpt2.Tokenizer.TokenBytes(id)!.Length == 1 && gpt2.Tokenizer.TokenBytes(id)![0] >= 0x80);   // a lone UTF-8 byte may start a character
    }

    [Fact]
    public void Walk_Choice_OutputIsOneOfTheChoices()
    {
        string[] choices = ["positive", "negative", "neutral", "n/a", "négatif"];
        var constraint = NewCompiler().Compile(OutputConstraint.Choice(choices));
        var random = new Random(3);
        for (int i = 0; i < 60; i++)
        {
            var (output, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, endChance: 0);
            Assert.True(complete);
            Assert.Contains(Encoding.UTF8.GetString(output), choices);
        }
    }

    [Fact]
    public void Advance_CompleteChoiceWithNoContinuation_CannotContinue()
    {
        var constraint = NewCompiler().Compile(OutputConstraint.Choice(["yes", "yes please"]));
        int state = constraint.Start;
        foreach (int id in gpt2.Tokenizer.Encode("yes", addSpecialTokens: false))
            state = constraint.Advance(state, id);
        Assert.True(constraint.IsAccepting(state));
        Assert.True(constraint.CanContinue(state));                 // " please" may follow
        foreach (int id in gpt2.Tokenizer.Encode(" please", addSpecialTokens: false))
            state = constraint.Advance(state, id);
        Assert.True(constraint.IsAccepting(state));
        Assert.False(constraint.CanContinue(state));
    }

    [Fact]
    public void Compile_SameConstraintTwice_OneCompiledInstance()
    {
        var compiler = NewCompiler();
        var a = compiler.Compile(OutputConstraint.Regex("[ab]+"));
        var b = compiler.Compile(OutputConstraint.Regex("[ab]+"));
        var c = compiler.Compile(OutputConstraint.Regex("[ab]*"));
        Assert.Same(a, b);
        Assert.NotSame(a, c);
        Assert.Equal((1, 2), (compiler.Hits, compiler.Misses));
    }

    [Fact]
    public void Compile_SameConstraintInTwoScopes_TwoAutomataGrowingApart()
    {
        var compiler = NewCompiler();
        var a = compiler.Compile(OutputConstraint.JsonObject(), scope: "tenant-a");
        var b = compiler.Compile(OutputConstraint.JsonObject(), scope: "tenant-b");
        long before = b.Bytes;
        int state = a.Start;
        foreach (byte c in System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"k\":[", 50))))
            state = a.Advance(state, gpt2.Tokenizer.Encode(((char)c).ToString(), false).Single());

        Assert.NotSame(a, b);
        Assert.Same(a, compiler.Compile(OutputConstraint.JsonObject(), scope: "tenant-a"));
        Assert.NotEqual(TokenConstraint.Dead, state);
        Assert.True(a.Bytes > before, $"{a.Bytes} vs {before}");
        Assert.Equal(before, b.Bytes);                                    // what one scope generated grew only its own
    }

    [Fact]
    public void AllowedTokens_WalkPastItsWorkBound_RefusedNamingTheBoundAndTheAutomatonStillUsable()
    {
        var constraint = NewCompiler().Compile(OutputConstraint.Regex("[a-z]{1,40} (yes|no)"));
        constraint.VisitsPerMask = 3;

        var ex = Assert.Throws<ConstraintException>(() => constraint.AllowedTokens(constraint.Start));
        Assert.Contains("more than 3 parser configurations", ex.Problem, StringComparison.Ordinal);
        constraint.VisitsPerMask = TokenConstraint.MaxVisitsPerMask;
        Assert.NotEmpty(ConstraintWalker.Ids(constraint.AllowedTokens(constraint.Start)));      // what was built stays consistent
        Assert.True(constraint.Matches("abc yes"));
    }

    [Fact]
    public void Compile_OverTheMemoryBudget_LeastRecentlyUsedEvicted()
    {
        var compiler = new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize, budgetBytes: 1);
        var first = compiler.Compile(OutputConstraint.Regex("[0-9]+"));
        first.AllowedTokens(first.Start);
        compiler.Compile(OutputConstraint.Regex("[a-z]+"));
        Assert.Equal(1, compiler.Cached.Count);
        Assert.NotSame(first, compiler.Compile(OutputConstraint.Regex("[0-9]+")));   // compiled again
    }

    [Fact]
    public void Compile_ManyDistinctConstraints_CacheStaysBounded()
    {
        var compiler = NewCompiler();
        for (int i = 0; i < TokenConstraintCompiler.MaxEntries + 20; i++)
            compiler.Compile(OutputConstraint.Regex($"x{{{i}}}"));
        Assert.Equal(TokenConstraintCompiler.MaxEntries, compiler.Cached.Count);
    }

    [Fact]
    public void Compile_RefusedConstraintSentAgain_RefusedWithoutBuildingAgain()
    {
        var compiler = NewCompiler();
        var bomb = OutputConstraint.Regex("(x{1000}){1000}");
        var first = Assert.Throws<ConstraintException>(() => compiler.Compile(bomb));
        var again = Assert.Throws<ConstraintException>(() => compiler.Compile(bomb));
        Assert.Contains("automaton states", first.Problem);
        Assert.Equal((first.Path, first.Problem), (again.Path, again.Problem));
        Assert.Equal((1, 1), (compiler.Hits, compiler.Misses));
    }

    [Fact]
    public async Task CompileAsync_ColdConstraintsBeyondTheBound_WaitForATurnWithoutBuilding()
    {
        var compiler = new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize, maxConcurrentBuilds: 1);
        compiler.Compile(OutputConstraint.Regex("x"));                        // the vocabulary trie, outside the test's timing
        using var firstBuilding = new ManualResetEventSlim();
        using var releaseFirst = new ManualResetEventSlim();
        int peak = 0, starts = 0;
        var gate = new object();
        compiler.BuildStarting = running =>
        {
            lock (gate)
                peak = Math.Max(peak, running);
            if (Interlocked.Increment(ref starts) == 1)
            {
                firstBuilding.Set();
                releaseFirst.Wait(TimeSpan.FromSeconds(30));
            }
        };
        var first = Task.Run(() => compiler.CompileAsync(OutputConstraint.Regex("[0-9]+"), CancellationToken.None).AsTask());
        Assert.True(firstBuilding.Wait(TimeSpan.FromSeconds(30)));
        var waiting = Enumerable.Range(0, 4).Select(i => compiler.CompileAsync(OutputConstraint.Regex($"y{{{i + 1}}}"), CancellationToken.None).AsTask()).ToList();
        await Task.Delay(200);
        Assert.Equal(1, Volatile.Read(ref starts));                           // the others wait for the first's turn to end
        Assert.All(waiting, w => Assert.False(w.IsCompleted));
        releaseFirst.Set();
        await first;
        await Task.WhenAll(waiting);
        Assert.Equal((1, 5), (peak, starts));
    }

    [Fact]
    public async Task CompileAsync_CancelledWhileWaitingForATurn_ThrowsAndLeavesTheTurnFree()
    {
        var compiler = new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize, maxConcurrentBuilds: 1);
        using var firstBuilding = new ManualResetEventSlim();
        using var releaseFirst = new ManualResetEventSlim();
        compiler.BuildStarting = _ =>
        {
            firstBuilding.Set();
            releaseFirst.Wait(TimeSpan.FromSeconds(30));
        };
        var first = Task.Run(() => compiler.CompileAsync(OutputConstraint.Regex("[0-9]+"), CancellationToken.None).AsTask());
        Assert.True(firstBuilding.Wait(TimeSpan.FromSeconds(30)));
        using var gone = new CancellationTokenSource();
        var cancelled = compiler.CompileAsync(OutputConstraint.Regex("[a-z]+"), gone.Token).AsTask();
        gone.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        releaseFirst.Set();
        await first;
        compiler.BuildStarting = null;
        Assert.NotNull(await compiler.CompileAsync(OutputConstraint.Regex("[a-z]+"), CancellationToken.None));
        Assert.Equal(2, compiler.Misses);
    }

    [Fact]
    public void Accept_TokenOutsideTheConstraint_EndsIncompleteInsteadOfGeneratingOn()
    {
        var compiler = NewCompiler();
        var sampling = new SamplingParams { Temperature = 0, MaxTokens = 20, Constraint = OutputConstraint.Regex("ab") };
        var sequence = new Serving.Engine.Generation.SequenceState([1, 2], sampling, gpt2.Tokenizer, [], constraint: compiler.Compile(sampling.Constraint));
        int x = gpt2.Tokenizer.Encode("x", addSpecialTokens: false)[0];
        var e = sequence.Accept(new SampledToken(x, 0, []), 1024);
        Assert.Equal(FinishReason.Stop, e.Finish);
        Assert.True(e.OutputIncomplete);

        var fine = new Serving.Engine.Generation.SequenceState([1, 2], sampling, gpt2.Tokenizer, [], constraint: compiler.Compile(sampling.Constraint));
        var last = gpt2.Tokenizer.Encode("ab", addSpecialTokens: false).Select(id => fine.Accept(new SampledToken(id, 0, []), 1024)).Last();
        Assert.Equal(FinishReason.Stop, last.Finish);                  // complete, and nothing may follow
        Assert.False(last.OutputIncomplete);
        Assert.Equal("ab", string.Concat(fine.GeneratedTokens.Select(id => System.Text.Encoding.UTF8.GetString(gpt2.Tokenizer.TokenBytes(id)!))));
    }
}
