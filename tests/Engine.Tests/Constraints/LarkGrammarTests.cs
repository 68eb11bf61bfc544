using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// Lark grammars (the other notation vLLM's <c>grammar</c> takes): the same language as the GBNF they stand for, the
/// common terminals, Lark's own constructs, and refusals naming what is not supported and where.
/// </summary>
public sealed class LarkGrammarTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    private TokenConstraint Compile(string grammar) => new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize).Compile(OutputConstraint.Grammar(grammar));

    [Fact]
    public void Compile_LarkAndItsGbnf_SameSentences()
    {
        var lark = Compile("""
            // the vLLM SQL example, in Lark
            start: select_statement
            select_statement: "SELECT " column " from " table " where " condition
            column: "col_1 " | "col_2 "
            table: "table_1 "
                 | "table_2 "
            condition: column "= " number
            number: "1 " | "2 "
            """);
        var gbnf = Compile("""
            root ::= "SELECT " column " from " table " where " column "= " number
            column ::= "col_1 " | "col_2 "
            table ::= "table_1 " | "table_2 "
            number ::= "1 " | "2 "
            """);

        foreach (string text in new[] { "SELECT col_1  from table_2  where col_2 = 1 ", "SELECT col_3  from table_2  where col_2 = 1 ", "SELECT col_1  from table_1  where col_1 = 2" })
            Assert.Equal(gbnf.Matches(text), lark.Matches(text));
        Assert.True(lark.Matches("SELECT col_2  from table_1  where col_1 = 2 "));
    }

    [Fact]
    public void Compile_LarkConstructs_AsLarkReadsThem()
    {
        var constraint = Compile("""
            ?start: greeting ("," _WS? name)~1..2 [punct] SIGNED_NUMBER?
            greeting: "hello"i | /h[ae]y+/
            name: CNAME | "x".."z"
            punct: "!" | "?"
            _WS: " "+
            %import common (CNAME, SIGNED_NUMBER)
            """);

        Assert.True(constraint.Matches("HeLLo, bob"));
        Assert.True(constraint.Matches("heyyy,y, _b2!-4.5e3"));
        Assert.True(constraint.Matches("hay,  z?"));
        Assert.False(constraint.Matches("hello, a, b, c"));                    // ~1..2
        Assert.False(constraint.Matches("hullo, bob"));
        Assert.False(constraint.Matches("hello, 9lives"));                      // CNAME starts with a letter or '_'
    }

    [Fact]
    public void Compile_ImportedEscapedString_JsonStringsOnly()
    {
        var constraint = Compile("""
            start: "{" ESCAPED_STRING ":" NUMBER "}"
            %import common.ESCAPED_STRING
            %import common.NUMBER
            """);

        Assert.True(constraint.Matches("{\"a \\\"b\\\"\":12.5}"));
        Assert.False(constraint.Matches("{\"a\"b\":1}"));
    }

    [Theory]
    [InlineData("rule: \"a\"", "grammar", "no 'start' rule")]
    [InlineData("start: x", "grammar[7]", "'x' is used but never defined")]
    [InlineData("start: \"a\"\n%ignore \" \"", "grammar[11]", "%ignore")]
    [InlineData("start: WORDS\n%import common.WORDS", "grammar[13]", "not one of the common terminals")]
    [InlineData("start: /a(?=b)/", "grammar[8][1]", "lookaround")]
    [InlineData("start: /ab/i", "grammar[11]", "flag 'i'")]
    [InlineData("start: (\"a\"", "grammar[7]", "never closed")]
    [InlineData("start: \"a\" ~ 3..1", "grammar[11]", "min ≤ max")]
    [InlineData("start: \"z\"..\"a\"", "grammar[12]", "in order")]
    public void Parse_UnsupportedOrMalformed_ThrowsNamingItsPosition(string grammar, string path, string problem)
    {
        Assert.True(LarkGrammarParser.LooksLikeLark(grammar));
        var ex = Assert.Throws<ConstraintException>(() => LarkGrammarParser.Parse(grammar));
        Assert.Equal(path, ex.Path);
        Assert.Contains(problem, ex.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("root ::= \"a\"", false)]
    [InlineData("start: \"a\"", true)]
    [InlineData("  ?expr : term", true)]
    [InlineData("root ::= a\na ::= \"x: y\"", false)]
    public void LooksLikeLark_RuleSyntax_DecidesTheNotation(string grammar, bool lark) => Assert.Equal(lark, LarkGrammarParser.LooksLikeLark(grammar));
}
