using Serving.AdapterStore.Tiers;
using Serving.Contracts;

namespace Serving.AdapterStore.Tests.Tiers;

public sealed class DeviceSlotTableTests
{
    private static AdapterVersionKey Id(string s) => new(AdapterId.Parse(s), "v1");

    [Fact]
    public void TryAcquire_Resident_NoLoadAndSameSlot()
    {
        var table = new DeviceSlotTable(2);
        Assert.True(table.TryAcquire(Id("a"), out var first, out bool load1));
        Assert.True(load1);
        Assert.True(table.TryAcquire(Id("a"), out var again, out bool load2));
        Assert.False(load2);
        Assert.Equal(first, again);
        Assert.Equal(2, table.Pins(first));
        Assert.Equal((1, 1), (table.Hits, table.Misses));
    }

    [Fact]
    public void TryAcquire_Full_EvictsLeastRecentlyUsedUnpinned()
    {
        var table = new DeviceSlotTable(2);
        table.TryAcquire(Id("a"), out var a, out _);
        table.TryAcquire(Id("b"), out var b, out _);
        table.Release(a);
        table.Release(b);
        table.TryAcquire(Id("a"), out _, out _);          // a is now more recent than b
        table.Release(a);
        Assert.True(table.TryAcquire(Id("c"), out var c, out bool load));
        Assert.True(load);
        Assert.Equal(b, c);
        Assert.Equal(Id("c"), table.Occupant(c));
        Assert.Equal(1, table.Evictions);
    }

    [Fact]
    public void TryAcquire_AllPinned_FailsUntilReleased()
    {
        var table = new DeviceSlotTable(1);
        table.TryAcquire(Id("a"), out var a, out _);
        Assert.False(table.TryAcquire(Id("b"), out _, out _));
        table.Release(a);
        Assert.True(table.TryAcquire(Id("b"), out var b, out bool load));
        Assert.True(load);
        Assert.Equal(a, b);
    }

    [Fact]
    public void Abandon_FailedLoad_FreesSlot()
    {
        var table = new DeviceSlotTable(1);
        table.TryAcquire(Id("bad"), out var slot, out _);
        table.Abandon(slot);
        Assert.Null(table.Occupant(slot));
        Assert.True(table.TryAcquire(Id("bad"), out _, out bool load));
        Assert.True(load);
    }

    [Fact]
    public void TryAcquire_TwoVersionsOfOneAdapter_OccupyTwoSlots()
    {
        var table = new DeviceSlotTable(2);
        var v1 = new AdapterVersionKey(AdapterId.Parse("a"), "v1");
        var v2 = new AdapterVersionKey(AdapterId.Parse("a"), "v2");
        table.TryAcquire(v1, out var s1, out _);
        Assert.True(table.TryAcquire(v2, out var s2, out bool load));
        Assert.True(load);
        Assert.NotEqual(s1, s2);
    }

    [Fact]
    public void Release_Unpinned_Throws()
    {
        var table = new DeviceSlotTable(1);
        Assert.Throws<InvalidOperationException>(() => table.Release(new SlotIndex(0)));
    }
}
