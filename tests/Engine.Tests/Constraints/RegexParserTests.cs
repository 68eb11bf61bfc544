using Serving.Engine.Constraints;

namespace Serving.Engine.Tests.Constraints;

public sealed class RegexParserTests
{
    [Theory]
    [InlineData(@"(a)\1", "regex[3]", "backreferences")]
    [InlineData(@"a(?=b)", "regex[1]", "lookaround")]
    [InlineData(@"(?<!x)y", "regex[0]", "lookaround")]
    [InlineData(@"\bword", "regex[0]", "assertion '\\b'")]
    [InlineData(@"(?i)abc", "regex[0]", "inline flags")]
    [InlineData(@"\p{L}+", "regex[0]", "Unicode property")]
    [InlineData(@"a{2,1}", "regex[1]", "below its minimum")]
    [InlineData(@"a{5000}", "regex[1]", "above 1000")]
    [InlineData(@"(ab", "regex[3]", "missing ')'")]
    [InlineData(@"ab)", "regex[2]", "unbalanced ')'")]
    [InlineData(@"[abc", "regex[4]", "missing ']'")]
    [InlineData(@"*a", "regex[0]", "nothing to repeat")]
    [InlineData(@"a^b", "regex[1]", "'^' is supported only at the start")]
    [InlineData(@"a$b", "regex[1]", "'$' is supported only at the end")]
    [InlineData(@"[z-a]", "regex[1]", "out of order")]
    [InlineData(@"a++", "regex[2]", "possessive")]
    [InlineData(@"\q", "regex[0]", "unknown escape")]
    [InlineData(@"[[:alpha:]]", "regex[1]", "POSIX")]
    [InlineData("abc\\", "regex[3]", "lone backslash")]
    public void Parse_UnsupportedOrMalformed_ThrowsNamingItsPosition(string pattern, string path, string problem)
    {
        var ex = Assert.Throws<ConstraintException>(() => RegexParser.Parse(pattern, "regex"));
        Assert.Equal(path, ex.Path);
        Assert.Contains(problem, ex.Problem);
    }

    [Theory]
    [InlineData("^abc$")]
    [InlineData("^a|b$")]
    [InlineData("a{,3}")]
    [InlineData("x{")]
    [InlineData("(?:a|b)*?c")]
    [InlineData("(?P<year>\\d{4})-(?<m>\\d\\d)")]
    [InlineData("[]a]")]
    [InlineData("[a-]")]
    [InlineData("\\u00e9\\x41\\u{1F600}")]
    public void Parse_Supported_Parses(string pattern) => Assert.NotNull(RegexParser.Parse(pattern, "regex"));
}
