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

    private const string LarkJson = """
        // Lark's own JSON tutorial grammar, as its tutorial writes it
        ?start: value
        ?value: object
              | array
              | string
              | SIGNED_NUMBER      -> number
              | "true"             -> true
              | "false"            -> false
              | "null"             -> null
        array  : "[" [value ("," value)*] "]"
        object : "{" [pair ("," pair)*] "}"
        pair   : string ":" value
        string : ESCAPED_STRING
        %import common.ESCAPED_STRING
        %import common.SIGNED_NUMBER
        %import common.WS
        %ignore WS
        """;

    [Fact]
    public void Compile_IgnoreDirective_WhitespaceBetweenTokensNotInsideThem()
    {
        var constraint = Compile(LarkJson);

        Assert.True(constraint.Matches("""{"a":[1,-2.5,{"b":null}],"c":"d e"}"""));
        Assert.True(constraint.Matches(" { \"a\" :\n [ 1 , -2.5 ,\t{ \"b\" : null } ] , \"c\" : \"d e\" } \n"));
        Assert.True(constraint.Matches(string.Concat(Enumerable.Repeat("[ ", 60)) + "true" + string.Concat(Enumerable.Repeat(" ]", 60))));
        Assert.False(constraint.Matches("""{"a": tr ue}"""));                     // inside a terminal: not skipped
        Assert.False(constraint.Matches("""{"a": - 1}"""));
        Assert.False(constraint.Matches("""{"a" 1}"""));
        var random = new Random(2);
        for (int i = 0; i < 20; i++)
        {
            var (bytes, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 300, endChance: 0.5);
            string text = System.Text.Encoding.UTF8.GetString(bytes);
            Assert.True(!complete || constraint.Matches(text), text);        // Lark's SIGNED_NUMBER allows "04": not strict JSON
        }
    }

    [Fact]
    public void Compile_IgnoredLiteralsAndPatterns_SkippedBeforeEveryTerminalAndAtTheEnd()
    {
        var constraint = Compile("""
            start: pair+
            pair: KEY "=" /[0-9]+/ ";"
            KEY: "a".."z"+
            %ignore " "
            %ignore /#[a-z]*\n/
            """);

        Assert.True(constraint.Matches("ab=12;c=3;"));
        Assert.True(constraint.Matches(" ab = 12 ;#note\n c=3; "));
        Assert.False(constraint.Matches("a b=12;"));                            // KEY is one terminal: no space inside
        Assert.False(constraint.Matches("ab=1 2;"));
        Assert.False(constraint.Matches("ab=12;\t"));
    }

    [Theory]
    [InlineData("rule: \"a\"", "grammar", "no 'start' rule")]
    [InlineData("start: x", "grammar[7]", "'x' is used but never defined")]
    [InlineData("start: \"a\"\n%declare B", "grammar[11]", "%declare")]
    [InlineData("start: \"a\" -> x \"b\"", "grammar[16]", "an alias ends its alternative")]
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
