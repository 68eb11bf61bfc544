using System.Text.RegularExpressions;
using Serving.Contracts.Generation;
using Serving.Engine.Constraints;
using Serving.Engine.Tests.Support;

namespace Serving.Engine.Tests.Constraints;

/// <summary>
/// GBNF grammars (vLLM's <c>grammar</c>) as token constraints: the language is the grammar's, recursion nesting without a
/// bound (a pushdown automaton), random walks over the GPT-2 vocabulary only ever write sentences of it, and malformed grammars are refused naming the
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
    public void Compile_RecursiveRules_NestAtAnyDepth()
    {
        var constraint = Compile(Arithmetic);

        Assert.True(constraint.Matches("1+2*3"));
        Assert.True(constraint.Matches("(1+2)*(30-4)"));
        string nested = new string('(', 300) + "7" + new string(')', 300);
        Assert.True(constraint.Matches(nested));
        Assert.True(constraint.Matches("1+" + nested + "*" + nested));
        Assert.False(constraint.Matches("(" + nested));                        // one parenthesis never closed
        Assert.False(constraint.Matches(nested + ")"));
        Assert.False(constraint.Matches("(1+2"));
        Assert.False(constraint.Matches("1+"));
        Assert.False(constraint.Matches("1234"));
    }

    [Fact]
    public void Compile_DirectLeftRecursion_ItsWholeLanguage()
    {
        // The textbook grammar GBNF tools refuse (llama.cpp loops on it): rewritten to expr ::= term (("+" | "-") term)*.
        var constraint = Compile("""
            root ::= expr
            expr ::= expr "+" term | expr "-" term | term
            term ::= term "*" factor | factor
            factor ::= [0-9]+ | "(" expr ")"
            """);

        Assert.True(constraint.Matches("1+2*3-4*(5+6)"));
        Assert.True(constraint.Matches(string.Join("+", Enumerable.Range(0, 200))));
        Assert.True(constraint.Matches(new string('(', 50) + "1*2" + new string(')', 50) + "-3"));
        Assert.False(constraint.Matches("1+"));
        Assert.False(constraint.Matches("+1"));
        Assert.False(constraint.Matches("1**2"));
    }

    [Fact]
    public void Compile_LeftRecursionThroughAnotherRule_NestsToTheBound()
    {
        // a ::= b "x" | "y", b ::= a "z": the language y(zx)*, each repetition one more call made before any byte is read.
        var constraint = Compile("""
            root ::= a
            a ::= b "x" | "y"
            b ::= a "z"
            """);

        Assert.True(constraint.Matches("y"));
        Assert.True(constraint.Matches("y" + string.Concat(Enumerable.Repeat("zx", LazyDfa.MaxLeftRecursion))));
        Assert.False(constraint.Matches("y" + string.Concat(Enumerable.Repeat("zx", 4 * LazyDfa.MaxLeftRecursion))));
        Assert.False(constraint.Matches("yz"));
    }

    [Fact]
    public void Walk_BranchThatOnlyRecurses_NeverEntered()
    {
        // x derives no finite text, so "b" can start no complete output: the mask must not allow it.
        var constraint = Compile("""
            root ::= "a" | "b" x
            x ::= "c" x | "d" x "e"
            """);

        var random = new Random(3);
        for (int i = 0; i < 50; i++)
        {
            var (bytes, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 20);
            Assert.True(complete);
            Assert.Equal("a", System.Text.Encoding.UTF8.GetString(bytes));
        }
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
    public void Compile_JsonGrammar_NestedValuesAtAnyDepth()
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
        Assert.True(constraint.Matches(string.Concat(Enumerable.Repeat("{\"a\": [", 100)) + "null" + string.Concat(Enumerable.Repeat("]}", 100))));
        Assert.False(constraint.Matches(string.Concat(Enumerable.Repeat("{\"a\": [", 100)) + "null" + string.Concat(Enumerable.Repeat("]}", 99))));
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
    [InlineData("root ::= a{1000}\na ::= b{1000}\nb ::= a | \"y\"")]
    [InlineData("root ::= a{1000}\na ::= b{1000}\nb ::= \"\"")]
    public void Compile_RepeatedReferencesMultiplyingCopies_RefusedByABound(string grammar)
    {
        // 1000 copies of a, each 1000 copies of b: 10^6 expansions; the expansion or the state bound stops the build.
        var ex = Assert.Throws<ConstraintException>(() => Compile(grammar));

        Assert.Matches($"more than ({GrammarExpansion.MaxExpansions:N0} times|500,000 automaton states)", ex.Problem);
    }

    [Theory]
    [InlineData("root ::= a\na ::= a{1000} | \"x\"", "x")]
    [InlineData("root ::= a\na ::= a a | \"x\" | \"(\" a \")\"", "x()")]
    public void Walk_AmbiguousRecursion_InTheLanguageUntilTheFrameBound(string grammar, string alphabet)
    {
        // The first was found by the REST fuzzer when recursion was unrolled (10^9 expansions); now a's body is built twice
        // (in place and as its machine). Both are ambiguous: a text parses in exponentially many ways, a stack each. A state
        // keeps the shallowest LazyDfa.MaxConfigurations, so texts stay sentences; when new stacks still outgrow the
        // frame bound the constraint says so (the server answers 400) instead of taking memory without end.
        var constraint = Compile(grammar);
        var random = new Random(5);
        int walks = 0, refused = 0;
        for (int i = 0; i < 20; i++)
        {
            try
            {
                var (bytes, complete) = ConstraintWalker.Walk(constraint, gpt2.Tokenizer, random, maxTokens: 200, endChance: 0.1);
                string text = System.Text.Encoding.UTF8.GetString(bytes);
                Assert.True(text.All(alphabet.Contains), text);
                Assert.True(!complete || constraint.Matches(text), text);
                walks++;
            }
            catch (ConstraintException ex)
            {
                Assert.Contains("call frames", ex.Problem, StringComparison.Ordinal);
                refused++;
            }
        }

        Assert.True(walks > 0, $"{refused} of 20 walks refused");
        Assert.True(Compile(grammar).Matches("x"));
    }

    [Theory]
    [InlineData("root ::= c* | a a\na ::= c*\nb ::= \"(\" a \")\" | a{1000} | b{2,3}\nc ::= b{2,3}")]
    [InlineData("root ::= a\na ::= b{30}\nb ::= a{2} | \"\"")]
    public void Compile_RecursionThroughEmptyRulesAndManyCallSites_RefusedAtTheClosureBound(string grammar)
    {
        // Found by the REST fuzzer: every order of calls made without reading a byte is a configuration of its own, and
        // one transition took tens of seconds. The closure bound makes it a 400 in about a tenth of a second.
        var ex = Assert.Throws<ConstraintException>(() => Compile(grammar));

        Assert.Contains($"more than {LazyDfa.MaxClosureVisits:N0} parser configurations", ex.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("root ::= \"(\" root \")\"")]
    [InlineData("root ::= a\na ::= b \"x\"\nb ::= \"y\" a")]
    public void Compile_OnlyInfiniteRecursion_Refused(string grammar)
    {
        var ex = Assert.Throws<ConstraintException>(() => Compile(grammar));

        Assert.Equal("grammar", ex.Path);
        Assert.Contains("recurses forever", ex.Problem, StringComparison.Ordinal);
    }
}
