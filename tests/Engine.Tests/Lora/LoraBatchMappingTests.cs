using Serving.Engine.Lora;

namespace Serving.Engine.Tests.Lora;

public sealed class LoraBatchMappingTests
{
    [Fact]
    public void ForSequences_RowsSharingOneAdapter_BlocksOfFourAndTheRestSingle()
    {
        // 9 decode rows on slot 2, 2 on slot 0, one mixture, one base-model row.
        IReadOnlyList<(int, float)> two = [(2, 1f)], zero = [(0, 0.5f)], mix = [(0, 0.5f), (2, 0.5f)], none = [];
        var rows = new List<IReadOnlyList<(int Slot, float Weight)>> { two, zero, two, two, mix, two, two, none, two, two, zero, two, two };

        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, rows.Count).ToList(), rows);

        Assert.Equal([[0, 2, 3, 5], [6, 8, 9, 11]], mapping.RowKernelBlocks);
        Assert.Equal([1, 10, 4, 12], mapping.RowKernelSingles);
    }
}
