using Serving.Engine.Generation;

namespace Serving.Engine.Tests.Generation;

public sealed class NgramProposerTests
{
    private static int[] FromSequence(int[] tokens, int min, int max, int k)
    {
        var drafts = new int[k];
        return drafts[..NgramProposer.FromSequence(tokens, min, max, drafts)];
    }

    private static int[] FromPrediction(int[] tokens, int[] prediction, int expectedEnd, int min, int max, int k)
    {
        var drafts = new int[k];
        return drafts[..NgramProposer.FromPrediction(tokens, prediction, expectedEnd, min, max, drafts)];
    }

    [Fact]
    public void FromSequence_SuffixRecurs_ProposesWhatFollowedItsMostRecentOccurrence()
    {
        //              0  1  2  3  4  5  6  7  8  9 10
        int[] tokens = [1, 2, 3, 4, 9, 2, 3, 5, 6, 2, 3];

        Assert.Equal([5, 6, 2], FromSequence(tokens, 1, 3, 3));   // "2 3" last seen at 5..6, followed by 5 6 2
        Assert.Equal([5, 6], FromSequence(tokens, 1, 3, 2));
        Assert.Equal([5, 6, 2, 3, 5, 6], FromSequence(tokens, 1, 3, 6));   // past the end: the period "5 6 2 3" again
    }

    [Fact]
    public void FromSequence_LongerPatternWins_OverAMoreRecentShorterOne()
    {
        //              0  1  2  3  4  5  6  7  8
        int[] tokens = [7, 2, 3, 4, 8, 3, 5, 7, 2, 3];

        Assert.Equal([4, 8], FromSequence(tokens, 1, 3, 2));       // "7 2 3" at 0..2 beats "3" at 5
        Assert.Equal([5, 7], FromSequence(tokens, 1, 1, 2));       // only one token: the most recent "3", at 5
    }

    [Fact]
    public void FromSequence_NothingRecursOrTooShort_ProposesNothing()
    {
        Assert.Empty(FromSequence([1, 2, 3, 4], 1, 3, 4));
        Assert.Empty(FromSequence([5], 1, 3, 4));
        Assert.Empty(FromSequence([1, 2, 9, 1, 2], 3, 4, 4));         // "1 2" recurs, but patterns start at 3 tokens
        Assert.Equal([9, 1, 2], FromSequence([1, 2, 9, 1, 2], 2, 4, 3));
    }

    [Fact]
    public void FromSequence_RunOfOneToken_ProposesTheRun()
    {
        Assert.Equal([4, 4, 4, 4], FromSequence([4, 4, 4, 4, 4, 4, 4, 4, 4], 1, 3, 4));
    }

    [Fact]
    public void FromPrediction_RepeatedLine_ContinuesAtTheOccurrenceNearestTheOutputsLength()
    {
        // prompt 100 101, output so far 5 6 (2 tokens); the prediction repeats "5 6" at 0 and at 4.
        int[] tokens = [100, 101, 5, 6];
        int[] prediction = [5, 6, 7, 8, 5, 6, 9, 10];

        Assert.Equal([7, 8, 5], FromPrediction(tokens, prediction, 2, 1, 3, 3));
        Assert.Equal([9, 10], FromPrediction(tokens, prediction, 6, 1, 3, 3));
    }

    [Fact]
    public void FromPrediction_OutputDivergedAndCameBack_Resynchronises()
    {
        int[] prediction = [1, 2, 3, 4, 5, 6, 7, 8];
        // The output wrote 1 2 X Y 4 5 (an edit); its last tokens "4 5" are found again.
        Assert.Equal([6, 7, 8], FromPrediction([50, 1, 2, 77, 78, 4, 5], prediction, 6, 1, 3, 4));
        Assert.Empty(FromPrediction([50, 1, 2, 77, 78], prediction, 4, 1, 3, 4));
        Assert.Empty(FromPrediction([50, 8], prediction, 1, 1, 3, 4));     // the prediction's end: nothing follows
    }

    [Fact]
    public void FromPrediction_MatchFartherThanTheWindow_NotLookedAt()
    {
        int w = NgramProposer.PredictionWindow;
        int[] prediction = [.. Enumerable.Repeat(0, 3 * w), 5, 6, 7];

        Assert.Equal([7], FromPrediction([1, 5, 6], prediction, 3 * w + 1, 1, 3, 4));
        Assert.Empty(FromPrediction([1, 5, 6], prediction, w / 2, 1, 3, 4));
        Assert.Equal([0, 0], FromPrediction([1, 0], prediction, w / 2, 1, 3, 2));   // a run: the occurrence at the expected end
    }

    [Theory]
    [InlineData(0, 3)]
    [InlineData(3, 2)]
    public void FromSequence_BadRange_Throws(int min, int max)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => FromSequence([1, 2, 1], min, max, 2));
    }
}
