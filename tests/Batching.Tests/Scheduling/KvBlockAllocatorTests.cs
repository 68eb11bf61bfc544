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
}
