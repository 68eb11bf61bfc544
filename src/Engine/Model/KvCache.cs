using Serving.Contracts.Configuration;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Paged key/value storage (vLLM's layout idea): per layer, K and V of shape <c>[Hkv, Blocks·BlockSize, D]</c> in the
/// compute dtype, addressed in blocks of <see cref="BlockSize"/> token positions. Storage only: which sequence holds which
/// block is decided outside (the scheduler's block allocator), and a sequence's <see cref="KvBlockTable"/> maps its
/// positions to physical rows (<see cref="PhysicalRow"/>), so memory follows the tokens actually cached, not max context ×
/// max sequences. Head-major, so the positions of one head gathered for attention form contiguous [L, D] slabs, which
/// libtorch's attention kernels read fastest. A layer's K and V are the two halves of one <c>[2·Hkv, R, D]</c> tensor
/// (<see cref="KeysAndValues"/>), so the libtorch path writes a step's K and V with one indexed copy and gathers them with
/// one index_select. A step never allocates cache memory.
/// <para>With KV groups (<see cref="KvCacheGroups"/>: a model whose sliding layers let their old blocks go), there are G storage
/// slots rather than one per layer: layer l reads and writes slot <c>SlotOf(l)</c> at the rows of its group's block table, so
/// block b holds G layers' K/V of whichever group's table names it.</para>
/// Not thread-safe: owned by the engine loop.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keysAndValues;
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;

    /// <param name="groups">How the layers share block ids; G storage slots of <paramref name="blocks"/> blocks each
    /// (<see cref="KvCacheGroups.Single"/>: one slot per layer, as without groups).</param>
    /// <param name="blocks">Blocks in the pool (capacity = blocks × blockSize tokens over all sequences).</param>
    /// <param name="blockSize">Token positions per block.</param>
    /// <param name="maxContext">Longest sequence allowed.</param>
    /// <param name="kvHeads">KV heads per layer.</param>
    /// <param name="headDim">Head dimension.</param>
    /// <param name="dtype">Storage dtype (the compute dtype).</param>
    /// <param name="device">Where the storage lives.</param>
    public KvCache(KvCacheGroups groups, int blocks, int blockSize, int maxContext, int kvHeads, int headDim, ScalarType dtype, Device device)
    {
        if (blocks <= 0 || blockSize <= 0 || maxContext <= 0)
            throw new ArgumentOutOfRangeException(nameof(blocks), "blocks, block size and max context must be positive");
        Groups = groups;
        TotalBlocks = blocks;
        BlockSize = blockSize;
        MaxContext = maxContext;
        int slots = groups.LayersPerGroup;
        _keysAndValues = new Tensor[slots];
        _keys = new Tensor[slots];
        _values = new Tensor[slots];
        for (int j = 0; j < slots; j++)
        {
            _keysAndValues[j] = Allocate([2L * kvHeads, (long)blocks * blockSize, headDim], dtype, device);
            _keys[j] = _keysAndValues[j].narrow(0, 0, kvHeads);              // contiguous halves: heads are the outer axis
            _values[j] = _keysAndValues[j].narrow(0, kvHeads, kvHeads);
        }
    }

    /// <summary>Zeroed storage; on CPU in huge pages where the OS allows (<see cref="Runtime.HugePages"/>).</summary>
    private static Tensor Allocate(long[] shape, ScalarType dtype, Device device)
    {
        var t = zeros(shape, dtype, device);
        Runtime.HugePages.Advise(t);
        return t;
    }

    /// <summary>How the layers share block ids.</summary>
    public KvCacheGroups Groups { get; }

    public int TotalBlocks { get; }
    public int BlockSize { get; }
    public int MaxContext { get; }
    public long TotalBytes => _keysAndValues.Sum(t => t.NumberOfElements * t.ElementSize);

    /// <summary>Blocks a sequence of <paramref name="tokens"/> positions needs.</summary>
    public int BlocksFor(int tokens) => (tokens + BlockSize - 1) / BlockSize;

    /// <summary>
    /// A fixed share of the pool for callers that run the model without a scheduler (tests, benchmarks, training, the
    /// router's probe): sequence <paramref name="sequence"/> gets, in each group g, the consecutive blocks for
    /// <see cref="MaxContext"/> positions starting at block <c>(sequence × groups + g) × ⌈MaxContext / BlockSize⌉</c>.
    /// Distinct sequences and groups get disjoint blocks.
    /// </summary>
    public KvBlockTable Partition(int sequence)
    {
        int per = BlocksFor(MaxContext), groups = Groups.Count;
        if (sequence < 0 || ((long)sequence + 1) * groups * per > TotalBlocks)
            throw new ArgumentOutOfRangeException(nameof(sequence), $"the cache's {TotalBlocks} blocks hold {TotalBlocks / (groups * per)} sequences of {MaxContext} positions; sequence {sequence} does not fit");
        return new KvBlockTable(Enumerable.Range(0, groups).Select(g => Enumerable.Range((sequence * groups + g) * per, per)));
    }

    /// <summary>
    /// Every sequence's table has one list per KV group and holds its positions in blocks of the cache (a sliding group's
    /// entries wholly behind its window may be <see cref="KvBlockTable.Released"/>), and no block is written by two sequences
    /// of the batch or two groups (a block another sequence only reads, as a shared prefix is, is fine).
    /// </summary>
    public void CheckTables(ForwardBatch batch)
    {
        var written = _writtenBlocks;
        written.Clear();
        var own = _continuedBlocks;
        for (int i = 0; i < batch.Sequences.Count; i++)
        {
            var s = batch.Sequences[i];
            if (s.EndPosition > MaxContext)
                throw new ArgumentException($"sequence {s.Kv} reaches position {s.EndPosition}, beyond the context limit {MaxContext}");
            if (s.Kv.GroupCount != Groups.Count)
                throw new ArgumentException($"sequence {s.Kv} has {s.Kv.GroupCount} block tables; the cache's layers form {Groups.Count} KV groups");
            if (s.EndPosition > s.Kv.Capacity(BlockSize))
                throw new ArgumentException($"sequence {s.Kv} reaches position {s.EndPosition} but its blocks hold {s.Kv.Capacity(BlockSize)}");
        }

        for (int g = 0; g < Groups.Count; g++)
            for (int i = 0; i < batch.Sequences.Count; i++)
            {
                var s = batch.Sequences[i];
                // A slice that carries on where the one before it ended, in the same table, is that sequence's next positions
                // (a speculative step's drafts): it may write the blocks that slice wrote, and only those.
                bool continues = i > 0 && ReferenceEquals(batch.Sequences[i - 1].Kv, s.Kv) && batch.Sequences[i - 1].EndPosition == s.StartPosition;
                if (!continues)
                    own.Clear();
                var blocks = s.Kv.Group(g);
                int firstRead = Groups.FirstHeld(g, s.StartPosition) / BlockSize;
                for (int b = 0; b < blocks.Count; b++)
                    if (blocks[b] == KvBlockTable.Released ? b >= firstRead : (uint)blocks[b] >= (uint)TotalBlocks)
                        throw new ArgumentException(blocks[b] == KvBlockTable.Released
                            ? $"sequence {s.Kv} released block {b} of KV group {g}, which position {s.StartPosition} still attends to"
                            : $"sequence {s.Kv} names block {blocks[b]}, outside the cache's {TotalBlocks} blocks");
                for (int b = s.StartPosition / BlockSize; b <= (s.EndPosition - 1) / BlockSize; b++)
                {
                    if (continues && own.Contains(blocks[b]))
                        continue;
                    if (!written.Add(blocks[b]))
                        throw new ArgumentException($"block {blocks[b]} is written by two sequences (or KV groups) of one batch");
                    own.Add(blocks[b]);
                }
            }
    }

    /// <summary><see cref="CheckTables"/>'s set, kept from step to step (the cache belongs to one engine loop).</summary>
    private readonly HashSet<int> _writtenBlocks = [];

    /// <summary>Blocks written by the current run of slices that continue one sequence.</summary>
    private readonly HashSet<int> _continuedBlocks = [];

    /// <summary>Row of the storage tensors holding position <paramref name="position"/> of <paramref name="table"/>'s group <paramref name="group"/>.</summary>
    public long PhysicalRow(KvBlockTable table, int group, int position) => (long)table.Group(group)[position / BlockSize] * BlockSize + position % BlockSize;

    /// <summary>Layer <paramref name="layer"/>'s keys <c>[Hkv, R, D]</c>, the first half of <see cref="KeysAndValues"/>.</summary>
    internal Tensor Keys(int layer) => _keys[Groups.SlotOf(layer)];

    /// <summary>Layer <paramref name="layer"/>'s values <c>[Hkv, R, D]</c>, the second half of <see cref="KeysAndValues"/>.</summary>
    internal Tensor Values(int layer) => _values[Groups.SlotOf(layer)];

    /// <summary>Layer <paramref name="layer"/>'s keys then values, <c>[2·Hkv, R, D]</c>: head h &lt; Hkv is key head h, Hkv + h value head h.</summary>
    internal Tensor KeysAndValues(int layer) => _keysAndValues[Groups.SlotOf(layer)];

    /// <summary>Layer <paramref name="layer"/>'s key storage (CPU), read once: the tensors live and stay put as long as the cache.</summary>
    internal unsafe byte* KeysAddress(int layer) => Address(ref _keyAddresses, _keys, layer);

    /// <summary>Layer <paramref name="layer"/>'s value storage (CPU).</summary>
    internal unsafe byte* ValuesAddress(int layer) => Address(ref _valueAddresses, _values, layer);

    private nint[]? _keyAddresses;
    private nint[]? _valueAddresses;

    private unsafe byte* Address(ref nint[]? addresses, Tensor[] tensors, int layer)
    {
        addresses ??= tensors.Select(t => (nint)Runtime.CpuTensorMemory.Address(t)).ToArray();
        return (byte*)addresses[Groups.SlotOf(layer)];
    }

    public void Dispose()
    {
        foreach (var t in _keys.Concat(_values).Concat(_keysAndValues))
            t.Dispose();
    }
}
