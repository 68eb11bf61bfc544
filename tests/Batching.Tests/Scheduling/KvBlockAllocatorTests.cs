using Serving.Batching.PrefixCaching;
using Serving.Batching.Scheduling;

namespace Serving.Batching.Tests.Scheduling;

public sealed class KvBlockAllocatorTests
{
    [Fact]
    public void TryAllocate_EnoughFree_AppendsDistinctBlocksHeldOnce()
    {
        var kv = new KvBlockAllocator(totalBlocks: 6, blockSize: 4);
        var a = new List<int>();
        var b = new List<int>();

        Assert.True(kv.TryAllocate(2, a));
        Assert.True(kv.TryAllocate(3, b));

        Assert.Equal(5, a.Concat(b).Distinct().Count());
        Assert.All(a.Concat(b), block => Assert.Equal(1, kv.References(block)));
        Assert.Equal((5, 1), (kv.UsedBlocks, kv.FreeBlocks));
    }

    [Fact]
    public void TryAllocate_PoolShort_TakesNothing()
    {
        var kv = new KvBlockAllocator(totalBlocks: 3, blockSize: 4);
        var a = new List<int>();
        Assert.True(kv.TryAllocate(2, a));
        var b = new List<int> { 99 };

        Assert.False(kv.TryAllocate(2, b));

        Assert.Equal([99], b);
        Assert.Equal(2, kv.UsedBlocks);
    }

    [Fact]
    public void Release_SharedBlock_FreedOnlyByItsLastHolder()
    {
        var kv = new KvBlockAllocator(totalBlocks: 2, blockSize: 4);
        var owner = new List<int>();
        kv.TryAllocate(1, owner);
        int shared = owner[0];
        kv.Retain(shared);
        var reader = new List<int> { shared };

        kv.Release(owner);
        Assert.Equal((1, 1), (kv.UsedBlocks, kv.References(shared)));
        Assert.Empty(owner);

        kv.Release(reader);
        Assert.Equal((0, 0), (kv.UsedBlocks, kv.References(shared)));
    }

    [Fact]
    public void Release_BlockAlreadyFree_ThrowsNamingTheBlock()
    {
        var kv = new KvBlockAllocator(totalBlocks: 2, blockSize: 4);
        var table = new List<int>();
        kv.TryAllocate(1, table);
        var copy = table.ToList();
        kv.Release(table);

        var ex = Assert.Throws<InvalidOperationException>(() => kv.Release(copy));

        Assert.Contains($"KV block {copy[0]}", ex.Message);
    }

    [Fact]
    public void Retain_FreeBlock_Throws()
    {
        var kv = new KvBlockAllocator(totalBlocks: 2, blockSize: 4);

        Assert.Throws<InvalidOperationException>(() => kv.Retain(0));
    }

    [Fact]
    public void TryAllocate_AfterRelease_ReusesFreedBlocks()
    {
        var kv = new KvBlockAllocator(totalBlocks: 2, blockSize: 4);
        var a = new List<int>();
        kv.TryAllocate(2, a);
        var freed = a.ToHashSet();
        kv.Release(a);
        var b = new List<int>();

        Assert.True(kv.TryAllocate(2, b));

        Assert.True(freed.SetEquals(b));
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(4, 1)]
    [InlineData(5, 2)]
    public void BlocksFor_Tokens_RoundsUpToWholeBlocks(int tokens, int blocks) =>
        Assert.Equal(blocks, new KvBlockAllocator(8, 4).BlocksFor(tokens));

    private static PrefixBlockKey Key(int i) => new((UInt128)i * 7919 + 1);

    [Fact]
    public void Release_CachedBlock_StaysCachedUnreferencedAndCountsAsFree()
    {
        var kv = new KvBlockAllocator(totalBlocks: 4, blockSize: 4);
        var table = new List<int>();
        kv.TryAllocate(2, table);
        kv.Register(table[0], Key(0));
        int cached = table[0];

        kv.Release(table);

        Assert.Equal((0, 4, 1), (kv.UsedBlocks, kv.FreeBlocks, kv.CachedBlocks));
        Assert.Equal(Key(0), kv.KeyOf(cached));
        var reader = new List<int>();
        Assert.Equal(1, kv.Reuse([Key(0), Key(1)], 2, reader));
        Assert.Equal([cached], reader);
        Assert.Equal((1, 1), (kv.UsedBlocks, kv.References(cached)));
    }

    [Fact]
    public void TryAllocate_OnlyCachedBlocksLeft_EvictsLeastRecentlyUsedAndForgetsItsKey()
    {
        var kv = new KvBlockAllocator(totalBlocks: 3, blockSize: 4);
        var table = new List<int>();
        kv.TryAllocate(3, table);
        for (int i = 0; i < 3; i++)
            kv.Register(table[i], Key(i));
        int[] blocks = [.. table];
        kv.Release(table);                                                // released in order: block 0 least recently used
        var touched = new List<int>();
        kv.Reuse([Key(0)], 1, touched);
        kv.Release(touched);                                              // block 0 used again: now block 1 is the oldest

        var fresh = new List<int>();
        Assert.True(kv.TryAllocate(1, fresh));

        Assert.Equal([blocks[1]], fresh);
        Assert.Null(kv.KeyOf(blocks[1]));
        Assert.Equal(2, kv.CachedBlocks);
        Assert.Equal(0, kv.Reuse([Key(1)], 1, new List<int>()));
        Assert.Equal(1, kv.Reuse([Key(0)], 1, new List<int>()));
    }

    [Fact]
    public void Reuse_StopsAtTheFirstMissingKeyAndAtTheLimit()
    {
        var kv = new KvBlockAllocator(totalBlocks: 6, blockSize: 4);
        var table = new List<int>();
        kv.TryAllocate(4, table);
        kv.Register(table[0], Key(0));
        kv.Register(table[1], Key(1));
        kv.Register(table[3], Key(3));

        Assert.Equal(2, kv.Reuse([Key(0), Key(1), Key(2), Key(3)], 4, new List<int>()));
        Assert.Equal(1, kv.Reuse([Key(0), Key(1), Key(2), Key(3)], 1, new List<int>()));
        Assert.Equal(0, kv.Reuse([Key(9), Key(0)], 4, new List<int>()));
    }

    [Fact]
    public void Register_KeyAlreadyCachedElsewhere_FirstBlockKeepsServingIt()
    {
        var kv = new KvBlockAllocator(totalBlocks: 4, blockSize: 4);
        var a = new List<int>();
        var b = new List<int>();
        kv.TryAllocate(1, a);
        kv.TryAllocate(1, b);

        kv.Register(a[0], Key(5));
        kv.Register(b[0], Key(5));

        Assert.Equal(Key(5), kv.KeyOf(a[0]));
        Assert.Null(kv.KeyOf(b[0]));
        var reader = new List<int>();
        kv.Reuse([Key(5)], 1, reader);
        Assert.Equal(a, reader);
    }
}
