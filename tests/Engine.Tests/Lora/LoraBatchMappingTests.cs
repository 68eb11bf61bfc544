using Serving.Contracts;
using Serving.Engine.Lora;

namespace Serving.Engine.Tests.Lora;

public sealed class LoraBatchMappingTests
{
    [Fact]
    public void ForSequences_RowsSharingOneAdapter_BlocksOfFourInSlotOrder()
    {
        // 9 decode rows on slot 2, 2 on slot 0, one mixture, one base-model row.
        IReadOnlyList<AdapterSlotWeight> two = [(2, 1f)], zero = [(0, 0.5f)], mix = [(0, 0.5f), (2, 0.5f)], none = [];
        var rows = new List<IReadOnlyList<AdapterSlotWeight>> { two, zero, two, two, mix, two, two, none, two, two, zero, two, two };

        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, rows.Count).ToList(), rows);

        // Slot 0: its two rows alone, then the mixture (listed under its first slot, 0); slot 2: two blocks of four and its
        // leftover row alone.
        Assert.Equal([[1], [10], [4], [0, 2, 3, 5], [6, 8, 9, 11], [12]], mapping.RowKernelItems);
    }

    [Fact]
    public void ForSequences_RowsSharingOneAdapter_SlotRunsOfAtMostRunRows()
    {
        // 20 rows on slot 1 around two rows on slot 0, a mixture and a base-model row.
        IReadOnlyList<AdapterSlotWeight> one = [(1, 1f)], zero = [(0, 1f)], mix = [(0, 0.5f), (1, 0.5f)], none = [];
        var rows = Enumerable.Repeat(one, 10).Append(zero).Append(mix).Append(none).Concat(Enumerable.Repeat(one, 10)).Append(zero).ToList();

        var mapping = LoraBatchMapping.ForSequences(Enumerable.Repeat(1, rows.Count).ToList(), rows);

        int[] slotOne = [.. Enumerable.Range(0, 10), .. Enumerable.Range(13, 10)];
        Assert.Equal([[10, 23], [11], slotOne[..LoraBatchMapping.RunRows], slotOne[LoraBatchMapping.RunRows..]], mapping.SlotRuns);
        Assert.Equal(mapping.RowKernelItems.SelectMany(i => i).Order(), mapping.SlotRuns.SelectMany(r => r).Order());
    }

    [Fact]
    public void ForSequences_PrefillChunksBesideDecodeRows_OnlyTheChunksAreSegments()
    {
        // Decode rows on slots 0 and 1, a 600-token prompt on slot 0, another decode row on slot 1, a 520-token prompt mixing
        // slots 0 and 1, a 300-token prompt on slot 1 (shorter than a segment), and a 520-token base-model prompt.
        IReadOnlyList<AdapterSlotWeight> zero = [(0, 1f)], one = [(1, 1f)], mix = [(0, 0.25f), (1, 0.75f)], none = [];
        int[] tokens = [1, 1, 600, 1, 520, 300, 520];
        Assert.InRange(LoraBatchMapping.SegmentRows, 301, 520);
        var mapping = LoraBatchMapping.ForSequences(tokens, [zero, one, zero, one, mix, one, none]);

        Assert.Equal(3, mapping.SegmentGroups.Count);
        Assert.Equal((0, 2, 600, 1f), Describe(mapping.SegmentGroups[0]));
        Assert.Equal((0, 603, 520, 0.25f), Describe(mapping.SegmentGroups[1]));
        Assert.Equal((1, 603, 520, 0.75f), Describe(mapping.SegmentGroups[2]));
        // The decode rows of slot 0 (0) and of slot 1 (1 and 602), and the short prompt, stay with the row kernel.
        Assert.Equal(new[] { 0, 1, 602 }.Concat(Enumerable.Range(1123, 300)).Order(), mapping.RowKernelRows.Order());
    }

    private static (int Slot, int First, int Count, float Weight) Describe(LoraSlotGroup g)
    {
        Assert.Equal(Enumerable.Range(g.Rows[0], g.Rows.Length), g.Rows);
        Assert.All(g.Weights, w => Assert.Equal(g.Weights[0], w));
        return (g.Slot, g.Rows[0], g.Rows.Length, g.Weights[0]);
    }
}
