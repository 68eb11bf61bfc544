using Serving.Authoring.Synthetic;
using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Model;
using Serving.Engine.Tests.Support;
using Serving.Tests.Shared;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Model;

/// <summary>
/// KV groups (vLLM's hybrid KV cache): a model with sliding and whole-context layers keeps its sliding layers' K/V in a
/// group of its own, whose blocks behind the window go back to the pool. Two sequences are run in steps of prefill chunks
/// and decode rows, once in a cache of one group with fixed tables and once in a grouped cache whose sliding blocks are
/// released as the window passes them and handed straight to the other sequence (so a read of a released block would read
/// the other sequence's K/V): the logits are the same bits on every path.
/// </summary>
public sealed class KvCacheGroupsModelTests : IDisposable
{
    private const int BlockSize = 2;
    private static readonly int[][] Prompts = [[464, 2068, 786, 2183, 40, 1101, 257, 1332, 13], [11, 22, 33, 44, 55, 66, 77]];
    private static readonly (int Sequence, int Count)[][] Steps =
    [
        [(0, 3), (1, 4)], [(0, 4), (1, 3)], [(0, 2), (1, 1)],
        [(0, 1), (1, 1)], [(0, 1), (1, 1)], [(0, 1), (1, 1)], [(0, 1), (1, 1)], [(0, 1), (1, 1)], [(0, 1), (1, 1)],
    ];

    private readonly string _root = TestDirectories.Create("kv-groups");

    /// <summary>The tile-grid shape, so that decode steps take the fused CPU path where this CPU has its kernels.</summary>
    private string Model(string architecture) =>
        TileGridModel.Ensure(Path.Combine(_root, architecture), TileGridModel.Spec(seed: 67) with { Architecture = architecture, TieWordEmbeddings = true });

    [Theory]
    [InlineData("Gemma3ForCausalLM", ScalarType.Float32, true)]
    [InlineData("Gemma3ForCausalLM", ScalarType.Float32, false)]
    [InlineData("Gemma3ForCausalLM", ScalarType.BFloat16, true)]
    [InlineData("GptOssForCausalLM", ScalarType.Float32, true)]
    [InlineData("GptOssForCausalLM", ScalarType.BFloat16, false)]
    [InlineData("Olmo3ForCausalLM", ScalarType.Float32, false)]
    public void Forward_SlidingBlocksReleasedAndReused_SameLogitsAsOneGroup(string architecture, ScalarType dtype, bool cpuKernels)
    {
        using var loaded = LoadedModel.Load(Model(architecture), dtype, CPU, 64);
        using var view = cpuKernels ? null : loaded.Model.WithKernels(new KernelOptions { FusedCpuDecode = false, CpuDecodeAttention = false, CpuElementwise = false });
        var model = view ?? loaded.Model;
        var groups = KvCacheGroups.For(loaded.Config);
        Assert.Equal(2, groups.Count);
        Assert.Equal([null, loaded.Config.SlidingWindow], groups.Windows);

        using var single = model.CreateKvCache(2, 64, BlockSize);
        long fusedBefore = loaded.Model.FusedDecodeSteps;
        var expected = Run(model, single, (s, _) => single.Partition(s));
        Assert.True(!cpuKernels || loaded.Model.FusedDecodeSteps > fusedBefore || !(VectorExp.IsSupported && SmallBatchGemv.IsAvailable), "the fused path did not run");
        // Both groups holding every position would take 2 × (8 + 7) = 30 blocks: 24 run out unless sliding blocks go back.
        using var grouped = model.CreateKvCache(2, 64, BlockSize, totalBlocks: 24, groups);
        var pool = new SlidingPool(grouped);
        var actual = Run(model, grouped, pool.Table);

        Assert.True(pool.Reused > 4, $"only {pool.Reused} released blocks were reused");
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i], actual[i]);
    }

    [Fact]
    public void Forward_ReleasedBlockTheWindowStillReaches_Refused()
    {
        using var loaded = LoadedModel.Load(Model("Gemma3ForCausalLM"), ScalarType.Float32, CPU, 64);
        var groups = KvCacheGroups.For(loaded.Config);
        using var cache = loaded.Model.CreateKvCache(1, 64, BlockSize, totalBlocks: 16, groups);
        int window = loaded.Config.SlidingWindow!.Value;
        // Position 8 attends from 8 − W + 1 = 5 (block 2) on; block 2 of the sliding group is released.
        var table = new KvBlockTable([Enumerable.Range(0, 5), [KvBlockTable.Released, KvBlockTable.Released, KvBlockTable.Released, 8, 9]]);
        Assert.Equal(4, window);
        var ex = Assert.Throws<ArgumentException>(() => loaded.Model.Forward(ForwardBatch.Create([(table, [5], 8)]), cache).Dispose());
        Assert.Contains("released block 2 of KV group 1", ex.Message);

        var oneGroup = new KvBlockTable(Enumerable.Range(0, 5));
        ex = Assert.Throws<ArgumentException>(() => loaded.Model.Forward(ForwardBatch.Create([(oneGroup, [5], 8)]), cache).Dispose());
        Assert.Contains("2 KV groups", ex.Message);
    }

    /// <summary>Every step's logits (all tokens), the tables from <paramref name="tableFor"/>(sequence, first position).</summary>
    private static float[][] Run(LlamaModel model, KvCache cache, Func<int, int, KvBlockTable> tableFor)
    {
        var written = new int[Prompts.Length];
        var all = new List<float[]>();
        foreach (var step in Steps)
        {
            var slices = new List<(KvBlockTable, IReadOnlyList<int>, int)>();
            foreach (var (s, n) in step)
            {
                var sequence = Prompts[s].Concat(Enumerable.Range(300 + 10 * s, 16)).ToArray();
                int start = written[s];
                written[s] += n;
                slices.Add((tableFor(s, start + n), sequence[start..(start + n)], start));
            }

            using var logits = model.Forward(ForwardBatch.Create(slices), cache, LogitsSelection.AllTokens);
            all.AddRange(LlamaModelTests.Rows(logits));
        }

        return [.. all];
    }

    /// <summary>
    /// A stand-in for the scheduler's allocator: per sequence and group a table grown to each step's end; a sliding group's
    /// blocks wholly behind the window of the step's first token released first, and the last released handed out first.
    /// </summary>
    private sealed class SlidingPool(KvCache cache)
    {
        private readonly Stack<int> _free = new(Enumerable.Range(0, cache.TotalBlocks).OrderBy(b => (b * 7919) % 101));
        private readonly HashSet<int> _released = [];
        private readonly Dictionary<int, List<int>[]> _tables = [];
        private readonly int[] _written = new int[2];

        public int Reused { get; private set; }

        public KvBlockTable Table(int sequence, int end)
        {
            int start = _written[sequence];
            _written[sequence] = end;
            if (!_tables.TryGetValue(sequence, out var groups))
                _tables[sequence] = groups = [.. Enumerable.Range(0, cache.Groups.Count).Select(_ => new List<int>())];
            for (int g = 0; g < groups.Length; g++)
            {
                var table = groups[g];
                for (int b = 0; (b + 1) * cache.BlockSize <= cache.Groups.FirstHeld(g, start); b++)
                    if (table[b] != KvBlockTable.Released)
                    {
                        _free.Push(table[b]);
                        _released.Add(table[b]);
                        table[b] = KvBlockTable.Released;
                    }

                while (table.Count * cache.BlockSize < end)
                {
                    int block = _free.Pop();
                    if (_released.Remove(block))
                        Reused++;
                    table.Add(block);
                }
            }

            return new KvBlockTable(groups.Select(g => g.ToArray()));
        }
    }

    public void Dispose() => TestDirectories.Delete(_root);
}
