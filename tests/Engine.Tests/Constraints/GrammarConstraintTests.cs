using System.Text.RegularExpressions;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// GBNF grammars (vLLM's <c>grammar</c>) as token constraints: the language is the grammar's within the recursion bound,
/// random walks over the GPT-2 vocabulary only ever write sentences of it, and malformed grammars are refused naming the
/// construct and its position.
/// </summary>
public sealed class GrammarConstraintTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>
{
    /// <summary>vLLM's documentation example.</summary>
    private const string Sql = """
        root ::= select_statement
        select_statement ::= "SELECT " column " from " table " where " condition
        column ::= "col_1 " | "col_2 "
        table ::= "table_1 " | "table_2 "
        condition ::= column "= " number
        number ::= "1 " | "2 "
        """;

    private const string Arithmetic = """
        # sums of products of numbers and parenthesised expressions
        root ::= expr
        expr ::= term (("+" | "-") term)*
        term ::= factor ("*" factor)*
        factor ::= number | "(" expr ")"
        number ::= [0-9]{1,3}
        """;

    private TokenConstraint Compile(string grammar) => new TokenConstraintCompiler(gpt2.Tokenizer, gpt2.Tokenizer.VocabSize).Compile(OutputConstraint.Grammar(grammar));

    [Fact]
    public void Compile_VllmSqlExample_ExactlyItsSentences()
    {
        var constraint = Compile(Sql);

        Assert.True(constraint.Matches("SELECT col_1  from table_2  where col_2 = 1 "));
        Assert.False(constraint.Matches("SELECT col_3  from table_2  where col_2 = 1 "));
        Assert.False(constraint.Matches("SELECT col_1  from table_2  where col_2 = 1"));
        Assert.False(constraint.Matches(""));
    }

    [Fact]
    public void Compile_RecursiveRules_NestingUpToTheBoundAndNoDeeper()
    {
        var constraint = Compile(Arithmetic);

        Assert.True(constraint.Matches("1+2*3"));
        Assert.True(constraint.Matches("(1+2)*(30-4)"));
        string nested = new string('(', GrammarExpansion.MaxRecursion - 1) + "7" + new string(')', GrammarExpansion.MaxRecursion - 1);
        Assert.True(constraint.Matches(nested));
        Assert.False(constraint.Matches("(" + nested + ")"));                  // one level past the bound
        Assert.False(constraint.Matches("(1+2"));
        Assert.False(constraint.Matches("1+"));
        Assert.False(constraint.Matches("1234"));
    }

    [Fact]
    public void Walk_Grammar_EveryCompleteOutputIsASentence()
    {
        var constraint = Compile(Arithmetic);
        var sentence = new Regex(@"^[0-9()+\-*]+$");
        var random = new Random(7);
        for (int i = 0; i < 200; i++)
        {
            var (bytes, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 200, endChance: 0.2);
            string text = System.Text.Encoding.UTF8.GetString(bytes);
            if (!complete)
                continue;
            Assert.Matches(sentence, text);
            Assert.True(constraint.Matches(text), text);
            Assert.Equal(text.Count(c => c == '('), text.Count(c => c == ')'));
        }
    }

    [Fact]
    public void Compile_ClassesEscapesQuantifiersAndComments_AsGbnfReadsThem()
    {
        var constraint = Compile("""
            root ::= greeting ws name{1,2} "!\n"   # a comment
            greeting ::= 'hi' | "h\u00e9llo" | "\x41\x42"
            ws ::= [ \t]+
            name ::= [A-Z] [^\x00-\x40\]]*
            """);

        Assert.True(constraint.Matches("hi \tBob!\n"));
        Assert.True(constraint.Matches("héllo AnnBen!\n"));
        Assert.True(constraint.Matches("AB Zz!\n"));
        Assert.False(constraint.Matches("hi bob!\n"));
        Assert.False(constraint.Matches("hi B]ob!\n"));
        Assert.True(constraint.Matches("hi AnnBenCid!\n"));                // [^\x00-\x40] holds the capitals too
        Assert.False(constraint.Matches("hi Ann Ben!\n"));
    }

    [Fact]
    public void Compile_JsonGrammar_NestedValuesWithinTheBound()
    {
        var constraint = Compile("""
            root   ::= object
            value  ::= object | array | string | number | ("true" | "false" | "null") ws
            object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
            array  ::= "[" ws ( value ("," ws value)* )? "]" ws
            string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
            number ::= "-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]{1,4})? ws
            ws     ::= | " " | "\n" [ \t]{0,8}
            """);

        Assert.True(constraint.Matches("""{"a": [1, 2.5e3, {"b": null}], "c\n": "d\u00e9"}"""));
        Assert.True(constraint.Matches("{}"));
        Assert.False(constraint.Matches("""{"a": [1, 2,]}"""));
        Assert.False(constraint.Matches("[1]"));
    }

    [Theory]
    [InlineData("", "grammar[0]", "empty")]
    [InlineData("start ::= \"a\"", "grammar", "no 'root' rule")]
    [InlineData("root ::= thing", "grammar[9]", "'thing' is used but never defined")]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"", "grammar[13]", "defined twice")]
    [InlineData("root = \"a\"", "grammar[5]", "expected '::='")]
    [InlineData("root ::= \"abc", "grammar[9]", "never closed")]
    [InlineData("root ::= [a-", "grammar[9]", "never closed")]
    [InlineData("root ::= (\"a\"", "grammar[9]", "never closed")]
    [InlineData("root ::= [z-a]", "grammar[10]", "reversed")]
    [InlineData("root ::= \"a\"{3,1}", "grammar[12]", "min ≤ max")]
    [InlineData("root ::= \"\\q\"", "grammar[10]", "unknown escape")]
    [InlineData("root ::= \"a\" @", "grammar[13]", "unexpected '@'")]
    public void Parse_Malformed_ThrowsNamingItsPosition(string grammar, string path, string problem)
    {
        var ex = Assert.Throws<ConstraintException>(() => GrammarParser.Parse(grammar));
        Assert.Equal(path, ex.Path);
        Assert.Contains(problem, ex.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("root ::= a\na ::= a{1000} | \"x\"")]
    [InlineData("root ::= a{1000}\na ::= b{1000}\nb ::= a | \"y\"")]
    public void Compile_RecursionUnderRepetitions_RefusedByTheExpansionBound(string grammar)
    {
        // Without the bound the first takes 1000^4 expansions that add no state (the recursion bound cuts each copy).
        var ex = Assert.Throws<ConstraintException>(() => Compile(grammar));

        Assert.Contains($"more than {GrammarExpansion.MaxExpansions:N0} times", ex.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Compile_OnlyInfiniteRecursion_RefusedNamingTheBound()
    {
        var ex = Assert.Throws<ConstraintException>(() => Compile("root ::= \"(\" root \")\""));

        Assert.Contains("recursion", ex.Problem, StringComparison.Ordinal);
    }
}
