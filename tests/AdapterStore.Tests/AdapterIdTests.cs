using Serving.Contracts;

namespace Serving.AdapterStore.Tests;

public sealed class AdapterIdTests
{
    [Theory]
    [InlineData("clinical-notes")]
    [InlineData("translate_en.fr-v2")]
    [InlineData("A1")]
    public void Parse_SafeName_Accepted(string text) => Assert.Equal(text, AdapterId.Parse(text).Value);

    [Theory]
    [InlineData("")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("x..y")]
    [InlineData("/etc")]
    [InlineData("name with space")]
    [InlineData("caf\u00e9")]
    public void TryParse_PathLikeOrUnsafe_RejectedWithReason(string text)
    {
        Assert.False(AdapterId.TryParse(text, out _, out string? error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void TryParse_TooLong_Rejected() => Assert.False(AdapterId.TryParse(new string('a', AdapterId.MaxLength + 1), out _, out _));
}
