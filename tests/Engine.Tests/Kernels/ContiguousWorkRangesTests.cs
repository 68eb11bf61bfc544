using Serving.Engine.Kernels;

namespace Serving.Engine.Tests.Kernels;

public sealed class ContiguousWorkRangesTests
{
    private static List<int> Drain(ContiguousWorkRanges ranges, int worker)
    {
        var taken = new List<int>();
        while (ranges.TryTake(worker, out int item))
            taken.Add(item);
        return taken;
    }

    [Fact]
    public void TryTake_EqualCosts_EachWorkerTakesItsOwnHalfInOrderFirst()
    {
        var ranges = new ContiguousWorkRanges(new double[] { 1, 1, 1, 1, 1, 1, 1, 1 }, 2);

        Assert.True(ranges.TryTake(1, out int first1));
        Assert.True(ranges.TryTake(0, out int first0));
        Assert.True(ranges.TryTake(0, out int second0));

        Assert.Equal(4, first1);
        Assert.Equal(0, first0);
        Assert.Equal(1, second0);
    }

    [Fact]
    public void TryTake_UnequalCosts_SplitsByCostNotByCount()
    {
        // Total 12: the first worker's share (6) is items 0..2, the second's items 3..8.
        var ranges = new ContiguousWorkRanges(new double[] { 4, 1, 1, 1, 1, 1, 1, 1, 1 }, 2);

        Assert.True(ranges.TryTake(1, out int first1));

        Assert.Equal(3, first1);
    }

    [Fact]
    public void TryTake_OwnRangeEmpty_StealsFromTheBackOfTheFullestRange()
    {
        var ranges = new ContiguousWorkRanges(new double[] { 1, 1, 1, 1, 1, 1 }, 3);
        Assert.Equal([2, 3], TakeN(ranges, 1, 2));
        Assert.True(ranges.TryTake(0, out _)); // worker 0 has item 1 left, worker 2 items 4 and 5

        var stolen = Drain(ranges, 1);

        Assert.Equal([5, 1, 4], stolen); // on a tie, the lower-numbered range
        Assert.False(ranges.TryTake(0, out _));
        Assert.False(ranges.TryTake(2, out _));
    }

    [Fact]
    public void TryTake_OneWorker_TakesEveryItemInOrder()
    {
        var ranges = new ContiguousWorkRanges(new double[] { 3, 0, 1, 7, 2 }, 1);

        Assert.Equal([0, 1, 2, 3, 4], Drain(ranges, 0));
    }

    [Fact]
    public void TryTake_MoreWorkersThanItemsOrNoItems_TakesEachItemOnce()
    {
        var none = new ContiguousWorkRanges([], 4);
        var two = new ContiguousWorkRanges(new double[] { 1, 1 }, 4);

        Assert.Empty(Drain(none, 3));
        Assert.Equal([0, 1], Enumerable.Range(0, 4).SelectMany(w => Drain(two, w)).Order());
    }

    [Theory]
    [InlineData(2, 1000)]
    [InlineData(8, 5000)]
    public void TryTake_WorkersRacing_EveryItemTakenExactlyOnce(int workers, int items)
    {
        var random = new Random(workers);
        var costs = Enumerable.Range(0, items).Select(_ => random.NextDouble() * 10).ToArray();
        var ranges = new ContiguousWorkRanges(costs, workers);
        var counts = new int[items];
        using var start = new Barrier(workers);

        var threads = Enumerable.Range(0, workers).Select(w => new Thread(() =>
        {
            start.SignalAndWait();
            while (ranges.TryTake(w, out int item))
            {
                Interlocked.Increment(ref counts[item]);
                // Worker 0 is slow, so the others finish first and steal from it while it takes from its front.
                if (w == 0)
                    Thread.SpinWait(200);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.All(counts, c => Assert.Equal(1, c));
    }

    private static int[] TakeN(ContiguousWorkRanges ranges, int worker, int n)
    {
        var taken = new int[n];
        for (int i = 0; i < n; i++)
            Assert.True(ranges.TryTake(worker, out taken[i]));
        return taken;
    }
}
