using Serving.Runtime.Speculation;

namespace Serving.Runtime.Tests.Speculation;

public sealed class OutputHistoryTests
{
    private static int[] Propose(OutputHistory? history, int[] sequence, int most)
    {
        var drafts = new int[most];
        return history is null ? [] : drafts[..history.Propose(sequence, drafts)];
    }

    [Fact]
    public void Propose_LastThreeTokensWrittenBefore_WhatFollowedTheMostRecentOccurrence()
    {
        var history = new OutputHistory();
        history.Add([1, 2, 3, 10, 11, 12, 13]);
        history.Add([7, 2, 3, 10, 20, 21]);

        Assert.Equal([20, 21], Propose(history, [99, 2, 3, 10], 4));       // the later text's continuation
        Assert.Equal([12], Propose(history, [3, 10, 11], 1));
        Assert.Empty(Propose(history, [3, 10, 99], 4));
        Assert.Empty(Propose(history, [10, 11], 4));                       // fewer than three tokens
        Assert.Empty(Propose(history, [20, 21, 22], 4));
    }

    [Fact]
    public void RemoveOldest_ForgetsItsPatternsButNotThoseALaterTextTookOver()
    {
        var history = new OutputHistory();
        history.Add([1, 2, 3, 4, 5]);
        history.Add([2, 3, 4, 9]);

        Assert.Equal(5, history.RemoveOldest());

        Assert.Empty(Propose(history, [1, 2, 3], 2));                      // only the first text had "1 2 3"
        Assert.Equal([9], Propose(history, [2, 3, 4], 2));                 // the later text's occurrence stays
        Assert.Equal(4, history.Tokens);
    }

    [Fact]
    public void Histories_OtherTenantOrSalt_NothingToDraftFrom()
    {
        var histories = new OutputHistories(1000);
        histories.Add("tenant-a", null, [1, 2, 3, 4], [5, 6, 7, 8, 9]);

        Assert.Equal([5, 6, 7], Propose(histories.For("tenant-a", null), [0, 2, 3, 4], 3));   // the prompt tail, then the output
        Assert.Equal([9], Propose(histories.For("tenant-a", null), [6, 7, 8], 3));
        Assert.Null(histories.For("tenant-b", null));
        Assert.Null(histories.For("tenant-a", "salt"));
        Assert.Null(histories.For("", null));
    }

    [Fact]
    public void Histories_PastTheTokenBound_OldestTextsOutFirstWhoeverWroteThem()
    {
        var histories = new OutputHistories(20);
        histories.Add("a", null, [1, 2, 3], [4, 5, 6, 7]);              // 7 tokens
        histories.Add("b", null, [1, 2, 3], [8, 9, 10, 11]);            // 14
        histories.Add("a", null, [20, 21, 22], [23, 24, 25, 26]);       // 21: a's first text goes

        Assert.Equal(14, histories.Tokens);
        Assert.Empty(Propose(histories.For("a", null), [1, 2, 3], 2));
        Assert.Equal([23, 24], Propose(histories.For("a", null), [20, 21, 22], 2));
        Assert.Equal([8, 9], Propose(histories.For("b", null), [1, 2, 3], 2));
        histories.Add("c", null, [1], Enumerable.Range(100, 30).ToArray());     // longer than the bound alone: not kept
        Assert.Null(histories.For("c", null));
    }
}
