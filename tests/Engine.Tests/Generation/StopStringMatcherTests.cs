using Serving.Engine.Generation;

namespace Serving.Engine.Tests.Generation;

public sealed class StopStringMatcherTests
{
    [Fact]
    public void Append_StopSpanningPieces_CutsBeforeStop()
    {
        var m = new StopStringMatcher(["END"]);
        var shown = m.Append("abc E") + m.Append("N") + m.Append("D tail");
        Assert.True(m.Stopped);
        Assert.Equal("abc ", shown);
    }

    [Fact]
    public void Append_PossibleStopPrefix_IsHeldBackThenReleased()
    {
        var m = new StopStringMatcher(["\n\n"]);
        Assert.Equal("line", m.Append("line\n"));
        Assert.Equal("\nmore", m.Append("more"));
        Assert.False(m.Stopped);
    }

    [Fact]
    public void Append_EarliestOfSeveralStops_Wins()
    {
        var m = new StopStringMatcher(["world", "lo w"]);
        Assert.Equal("hel", m.Append("hello world"));
    }

    [Fact]
    public void Flush_HeldBackText_IsEmittedAtEnd()
    {
        var m = new StopStringMatcher(["xyz"]);
        Assert.Equal("ab", m.Append("abxy"));
        Assert.Equal("xy", m.Flush());
    }
}
