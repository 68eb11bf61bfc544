using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// xgrammar's structural tag as a token constraint: free text until a trigger, then one of the structures (begin, JSON
/// against its schema, end), then free text again; a trigger that does not start a valid structure is never allowed.
/// </summary>
public sealed class StructuralTagTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    private const string Spec = """
        {"type": "structural_tag", "triggers": ["<function="],
         "structures": [
           {"begin": "<function=get_weather>", "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}, "end": "</function>"},
           {"begin": "<function=get_time>", "schema": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"], "additionalProperties": false}, "end": "</function>"}]}
        """;

    private TokenConstraint Compile(string spec) => new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize).Compile(OutputConstraint.StructuralTag(spec));

    [Fact]
    public void Compile_FreeTextAndCalls_OnlyCallsThatMatchTheirSchema()
    {
        var constraint = Compile(Spec);

        Assert.True(constraint.Matches("Let me check. <function=get_weather>{\"city\":\"Paris\"}</function> and <function=get_time>{\"zone\":\"CET\"}</function> done"));
        Assert.True(constraint.Matches("no calls at all, <function only looks like one"));
        Assert.True(constraint.Matches(""));
        Assert.False(constraint.Matches("<function=get_weather>{\"town\":\"Paris\"}</function>"));     // not its schema
        Assert.False(constraint.Matches("<function=get_time>{\"zone\":\"PST\"}</function>"));
        Assert.False(constraint.Matches("<function=launch>{}</function>"));                       // no such structure
        Assert.False(constraint.Matches("text <function=get_weather>{\"city\":\"Rome\"}"));          // not ended
    }

    [Fact]
    public void Walk_AfterATrigger_OnlyValidStructuresCanBeWritten()
    {
        // Random walks from the text "Hi <function=" on: the mask must hold every continuation to one of the structures.
        var constraint = Compile(Spec);
        var random = new Random(11);
        int[] lead = gpt2.Tokenizer.Encode("Hi <function=", addSpecialTokens: false);
        int start = lead.Aggregate(constraint.Start, (state, token) => constraint.Advance(state, token));
        Assert.NotEqual(TokenConstraint.Dead, start);
        int complete = 0;
        for (int i = 0; i < 200; i++)
        {
            var text = new List<byte>("Hi <function="u8.ToArray());
            int state = start;
            for (int step = 0; step < 60; step++)
            {
                if (constraint.IsAccepting(state) && (!constraint.CanContinue(state) || random.NextDouble() < 0.3))
                {
                    complete++;
                    string written = System.Text.Encoding.UTF8.GetString([.. text]);
                    Assert.True(constraint.Matches(written), written);
                    Assert.Matches(@"^Hi <function=(get_weather>\{""city"":""[^""]*""\}|get_time>\{""zone"":""(UTC|CET)""\})</function>", written);
                    break;
                }

                var allowed = ConstraintWalker.Ids(constraint.AllowedTokens(state));
                Assert.NotEmpty(allowed);
                int token = allowed[random.Next(allowed.Count)];
                state = constraint.Advance(state, token);
                text.AddRange(gpt2.Tokenizer.TokenBytes(token)!);
            }
        }

        Assert.True(complete > 20, $"only {complete} walks completed a call");
    }

    [Theory]
    [InlineData("[]", "structural_tag", "must be an object")]
    [InlineData("""{"structures": [], "triggers": ["<f"]}""", "structural_tag.structures", "1 to 64")]
    [InlineData("""{"structures": [{"begin": "<f>", "schema": {}, "end": "</f>"}]}""", "structural_tag.triggers", "non-empty strings")]
    [InlineData("""{"structures": [{"begin": "<g>", "schema": {}, "end": "</g>"}], "triggers": ["<f"]}""", "structural_tag.structures[0].begin", "start with one of the triggers")]
    [InlineData("""{"structures": [{"begin": "<f>", "end": "</f>"}], "triggers": ["<f"]}""", "structural_tag.structures[0].schema", "required")]
    [InlineData("""{"structures": [{"begin": "<f>", "schema": {"type": "object", "properties": {"a": {"type": "wat"}}}, "end": "</f>"}], "triggers": ["<f"]}""",
        "structural_tag.structures[0].schema.properties.a.type", "")]
    [InlineData("""{"type": "tag", "structures": [{"begin": "<f>", "schema": {}, "end": "</f>"}], "triggers": ["<f"]}""", "structural_tag.type", "structural_tag")]
    public void Compile_Malformed_ThrowsNamingThePath(string spec, string path, string problem)
    {
        var ex = Assert.Throws<ConstraintException>(() => Compile(spec));
        Assert.Equal(path, ex.Path);
        Assert.Contains(problem, ex.Problem, StringComparison.Ordinal);
    }
}
