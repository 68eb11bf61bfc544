using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// A constraint that lets a reasoning model think first (<see cref="OutputConstraint.FreeText"/>): any text up to the
/// first <c>&lt;/think&gt;</c>, at most eight characters of JSON whitespace, then the format — over the full GPT-2 vocabulary.
/// </summary>
public sealed class FreeTextConstraintTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    private static readonly FreeTextPrefix Think = FreeTextPrefix.Until("</think>", whitespaceAfter: 8);

    private const string Schema = """{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}""";

    private TokenConstraint Compile(OutputConstraint constraint) =>
        new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize).Compile(constraint);

    [Theory]
    [InlineData("Let me think: {not json} <b>x</b>\n</think>\n\n{\"a\":1}", true)]
    [InlineData("</think>{\"a\":12}", true)]
    [InlineData("<think>why</thin</think>{\"a\":1}", true)]
    [InlineData("<</</t</th</think>{\"a\":1}", true)]
    [InlineData("{\"a\":1}", false)]
    [InlineData("x</think>not json", false)]
    [InlineData("x</think>{\"a\":1}</think>", false)]
    [InlineData("x</think>{\"a\":1} ", false)]
    [InlineData("still thinking", false)]
    [InlineData("x</think>\n\n      {\"a\":1}", true)]
    [InlineData("x</think>\n\n       {\"a\":1}", false)]
    public void Matches_FreeTextUntilTheMarker_OnlyTheFormatAfterItsFirstOccurrence(string text, bool matches) =>
        Assert.Equal(matches, Compile(OutputConstraint.JsonSchema(Schema) with { FreeText = Think }).Matches(text));

    [Fact]
    public void Advance_ThroughTheMarker_EndsOnlyAfterTheFormat()
    {
        var constraint = Compile(OutputConstraint.Choice(["yes", "no"]) with { FreeText = Think });
        int state = constraint.Start;
        Assert.False(constraint.IsAccepting(state));                  // no stop token while thinking
        foreach (int token in gpt2.Tokenizer.Encode("Hmm, yes or no? </think>\n", addSpecialTokens: false))
        {
            Assert.False(constraint.IsAccepting(state));
            state = constraint.Advance(state, token);
            Assert.NotEqual(TokenConstraint.Dead, state);
        }

        var allowed = ConstraintWalker.Ids(constraint.AllowedTokens(state)).Select(id => gpt2.Tokenizer.Decode([id], skipSpecialTokens: false)).ToList();
        Assert.Contains("yes", allowed);
        Assert.DoesNotContain("maybe", allowed);
        foreach (int token in gpt2.Tokenizer.Encode("no", addSpecialTokens: false))
            state = constraint.Advance(state, token);
        Assert.True(constraint.IsAccepting(state));
    }

    [Fact]
    public void AllowedTokens_FreeAndConstrainedStates_EqualAdvancingEveryTokenAlone()
    {
        var constraint = Compile(OutputConstraint.JsonSchema(Schema) with { FreeText = Think });
        var states = new List<int> { constraint.Start };
        int state = constraint.Start;
        foreach (int token in gpt2.Tokenizer.Encode("I think </th", addSpecialTokens: false).Concat(gpt2.Tokenizer.Encode("ink>{\"a\":", addSpecialTokens: false)))
        {
            state = constraint.Advance(state, token);
            states.Add(state);
        }

        foreach (int s in states)
        {
            var mask = constraint.AllowedTokens(s);
            for (int id = 0; id < gpt2.Tokenizer.VocabSize; id++)
                Assert.True(((mask[id >> 6] >> (id & 63) & 1) != 0) == (constraint.Advance(s, id) != TokenConstraint.Dead), $"token {id} in state {s}");
        }
    }

    [Fact]
    public void CacheKey_WithAndWithoutFreeText_Distinct()
    {
        var plain = OutputConstraint.JsonSchema(Schema);
        Assert.NotEqual(plain.CacheKey(), (plain with { FreeText = Think }).CacheKey());
        Assert.NotEqual(plain, plain with { FreeText = Think });
        Assert.NotEqual((plain with { FreeText = FreeTextPrefix.Until("</think>") }).CacheKey(), (plain with { FreeText = Think }).CacheKey());
        Assert.Equal(plain with { FreeText = FreeTextPrefix.Until("</think>", 8) }, plain with { FreeText = Think });
    }
}
