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
        // Block size 2: the 13-token prompt and 6 decode steps span 10 blocks, here out of order and interleaved with
        // blocks another sequence writes in the same steps.
        using var contiguous = Model.CreateKvCache(1, 64, blockSize: 2);
        using var scattered = Model.CreateKvCache(3, 64, blockSize: 2);
        var a = contiguous.Partition(0);
        var b = new KvBlockTable([41, 3, 17, 0, 90, 22, 5, 63, 30, 11]);
        var decoy = new KvBlockTable([1, 2, 4, 6, 7, 8, 9, 10, 12, 13]);
        var tokens = Prompt.ToList();
        using (var expected = Model.Forward(ForwardBatch.Create([(a, tokens, 0)]), contiguous))
        {
            for (int i = 0; i < Prompt.Length; i += 2)
            {
                var chunk = tokens.Skip(i).Take(2).ToArray();
                using var logits = Model.Forward(ForwardBatch.Create([(decoy, chunk.Select(t => t + 1).ToArray(), i), (b, chunk, i)]), scattered);
                if (i + 2 >= Prompt.Length)
                    LlamaModelTests.AssertClose(LlamaModelTests.Rows(expected)[0], LlamaModelTests.Rows(logits)[1], "prefill");
            }
        }

        for (int step = 0; step < 6; step++)
        {
            tokens.Add(1000 + step);
            using var x = Model.Forward(ForwardBatch.Create([(a, new[] { tokens[^1] }, tokens.Count - 1)]), contiguous);
            using var y = Model.Forward(ForwardBatch.Create([(b, new[] { tokens[^1] }, tokens.Count - 1)]), scattered);
            LlamaModelTests.AssertClose(LlamaModelTests.Rows(x)[0], LlamaModelTests.Rows(y)[0], $"decode {step}");
        }
    }

    [Fact]
    public void Forward_TableTooShortForThePositions_ThrowsNamingTheCapacity()
    {
        using var cache = Model.CreateKvCache(2, 64, blockSize: 4);
        var table = new KvBlockTable([5, 6]);

        var ex = Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(table, new[] { 1, 2 }, 7)]), cache));

        Assert.Contains("reaches position 9 but its blocks hold 8", ex.Message);
    }

    [Fact]
    public void Forward_BlockOutsideTheCache_Throws()
    {
        using var cache = Model.CreateKvCache(1, 64, blockSize: 4);

        var ex = Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(new KvBlockTable([0, cache.TotalBlocks]), new[] { 1, 2, 3, 4, 5 }, 0)]), cache));

        Assert.Contains($"block {cache.TotalBlocks}, outside the cache", ex.Message);
    }

    [Fact]
    public void Forward_TwoSequencesWriteOneBlock_Throws()
    {
        using var cache = Model.CreateKvCache(2, 64, blockSize: 4);

        var ex = Assert.Throws<ArgumentException>(() => Model.Forward(ForwardBatch.Create([(new KvBlockTable([3]), new[] { 1, 2 }, 0), (new KvBlockTable([3]), new[] { 7 }, 0)]), cache));

        Assert.Contains("block 3 is written by two sequences", ex.Message);
    }

    [Fact]
    public void Partition_Sequences_DisjointAndBoundedByThePool()
    {
        using var cache = Model.CreateKvCache(3, 64, blockSize: 4);

        var tables = Enumerable.Range(0, 3).Select(cache.Partition).ToList();

        Assert.All(tables, t => Assert.Equal(16, t.Blocks.Count));
        Assert.Equal(48, tables.SelectMany(t => t.Blocks).Distinct().Count());
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Partition(3));
    }
}
