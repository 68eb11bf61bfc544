using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;

namespace Serving.Engine.Tests.Model;

[Collection(TinyModelCollection.Name)]
public sealed class KvCacheTests(TinyModelFixture fixture)
{
    private static readonly int[] Prompt = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 40, 1101, 257];

    private LlamaModel Model => fixture.Loaded.Model;

    [Fact]
    public void Forward_BlocksScatteredAcrossThePool_SameLogitsAsContiguousBlocks()
    {
        // Block size 2: the 13-token prompt and 6 decode steps span 10 blocks. In the scattered cache two other sequences grow
        // in between, so this sequence's blocks interleave with theirs in the pool.
        using var contiguous = Model.CreateKvCache(1, 64, blockSize: 2);
        using var scattered = Model.CreateKvCache(3, 64, blockSize: 2);
        var a = contiguous.Allocate();
        var b = scattered.Allocate();
        var decoys = new[] { scattered.Allocate(), scattered.Allocate() };
        var tokens = Prompt.ToList();
        using (var expected = Model.Forward(ForwardBatch.Create([(a, tokens, 0)]), contiguous))
        {
            for (int i = 0; i < Prompt.Length; i += 2)
            {
                scattered.EnsureCapacity(decoys[0], i + 2);
                using var chunk = Model.Forward(ForwardBatch.Create([(b, tokens.Skip(i).Take(2).ToArray(), i)]), scattered);
                scattered.EnsureCapacity(decoys[1], i + 2);
                if (i + 2 >= Prompt.Length)
                    LlamaModelTests.AssertClose(LlamaModelTests.Rows(expected)[0], LlamaModelTests.Rows(chunk)[0], "prefill");
            }
        }

        Assert.NotEqual(Enumerable.Range(b.Blocks[0], b.Blocks.Count), b.Blocks);
        for (int step = 0; step < 6; step++)
        {
            tokens.Add(1000 + step);
            using var x = Model.Forward(ForwardBatch.Create([(a, new[] { tokens[^1] }, tokens.Count - 1)]), contiguous);
            using var y = Model.Forward(ForwardBatch.Create([(b, new[] { tokens[^1] }, tokens.Count - 1)]), scattered);
            LlamaModelTests.AssertClose(LlamaModelTests.Rows(x)[0], LlamaModelTests.Rows(y)[0], $"decode {step}");
        }
    }

    [Fact]
    public void EnsureCapacity_PoolExhausted_ThrowsNamingTheShortfallAndAddsNothing()
    {
        using var cache = Model.CreateKvCache(1, 64, blockSize: 4, totalBlocks: 3);
        var first = cache.Allocate();
        cache.EnsureCapacity(first, 8);
        var second = cache.Allocate();

        var ex = Assert.Throws<InvalidOperationException>(() => cache.EnsureCapacity(second, 9));

        Assert.Contains("needs 3 more, 1 of 3 are free", ex.Message);
        Assert.Empty(second.Blocks);
        Assert.Equal(2, cache.UsedBlocks);
    }

    [Fact]
    public void Release_ReturnsEveryBlockAndRefusesASecondRelease()
    {
        using var cache = Model.CreateKvCache(2, 64, blockSize: 4);
        var table = cache.Allocate();
        cache.EnsureCapacity(table, 10);
        Assert.Equal(3, cache.UsedBlocks);

        cache.Release(table);

        Assert.Equal(0, cache.UsedBlocks);
        Assert.Throws<InvalidOperationException>(() => cache.Release(table));
    }

    [Fact]
    public void Forward_StartBeyondCachedPositions_Throws()
    {
        using var cache = Model.CreateKvCache(1, 64, blockSize: 4);
        var table = cache.Allocate();

        var ex = Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(table, new[] { 1, 2 }, 8)]), cache));

        Assert.Contains("starts at position 8", ex.Message);
    }
}
