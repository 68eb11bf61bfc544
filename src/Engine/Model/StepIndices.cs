using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Index tensors derived once per step from a <see cref="ForwardBatch"/> and the sequences' block tables, shared by every
/// layer. Decode rows (one token) are attended together as one batch; prefill slices one at a time. All "rows" are physical
/// rows of the paged cache (<see cref="KvCache.PhysicalRow"/>).
/// </summary>
internal sealed class StepIndices : IDisposable
{
    /// <param name="batch">The step's packed tokens.</param>
    /// <param name="cache">Must already hold blocks for every position the batch writes.</param>
    /// <param name="dtype">Compute dtype (of the decode mask).</param>
    /// <param name="device">Where the index tensors go.</param>
    public StepIndices(ForwardBatch batch, KvCache cache, ScalarType dtype, Device device)
    {
        int t = batch.TokenCount;
        var rowPerToken = new long[t];
        var decodeTokens = new List<long>();
        var decodeSequences = new List<SequenceSlice>();
        var prefill = new List<SequenceSlice>();
        foreach (var s in batch.Sequences)
        {
            for (int i = 0; i < s.Count; i++)
                rowPerToken[s.Offset + i] = cache.PhysicalRow(s.Kv, s.StartPosition + i);
            if (s.Count == 1)
            {
                decodeTokens.Add(s.Offset);
                decodeSequences.Add(s);
            }
            else
            {
                prefill.Add(s);
            }
        }

        TokenPositions = batch.Positions;
        Tokens = tensor(batch.Tokens.Select(x => (long)x).ToArray(), ScalarType.Int64, device);
        Positions = tensor(batch.Positions.Select(x => (long)x).ToArray(), ScalarType.Int64, device);
        RowPerToken = tensor(rowPerToken, ScalarType.Int64, device);
        RowPerTokenHost = rowPerToken;
        LastTokens = tensor(batch.Sequences.Select(s => (long)(s.Offset + s.Count - 1)).ToArray(), ScalarType.Int64, device);
        Prefill = prefill;
        PrefillRows = prefill.Select(s => tensor(Rows(cache, s.Kv, s.EndPosition, s.EndPosition), ScalarType.Int64, device)).ToArray();
        AllDecode = prefill.Count == 0;
        DecodeCount = decodeTokens.Count;
        if (DecodeCount > 0)
        {
            DecodeTokens = tensor(decodeTokens.ToArray(), ScalarType.Int64, device);
            DecodeContext = decodeSequences.Max(s => s.EndPosition);
            var rows = new long[DecodeCount * DecodeContext];
            for (int b = 0; b < DecodeCount; b++)
                Rows(cache, decodeSequences[b].Kv, decodeSequences[b].EndPosition, DecodeContext).CopyTo(rows, b * DecodeContext);
            DecodeRowTable = rows;
            DecodeLengths = decodeSequences.Select(s => s.EndPosition).ToArray();
        }

        _dtype = dtype;
        _device = device;
    }

    private readonly ScalarType _dtype;
    private readonly Device _device;
    private Tensor? _decodeRows;
    private Tensor? _decodeMask;
    private Tensor?[]? _prefillMasks;

    /// <summary>
    /// [B·L] int64, rows of positions 0..L-1 per decode row (row 0 past its end); built on first use, since the CPU
    /// attention kernel reads <see cref="DecodeRowTable"/> instead. Owned by this object, outside any dispose scope.
    /// </summary>
    public Tensor? DecodeRows => DecodeRowTable is null ? null : _decodeRows ??= tensor(DecodeRowTable, ScalarType.Int64, _device).DetachFromDisposeScope();

    /// <summary>[B, 1, 1, L] additive (0 inside each sequence, −∞ beyond its end), compute dtype; null when all decode rows have the same length. Built on first use.</summary>
    public Tensor? DecodeMask => DecodeLengths is null || DecodeLengths.All(n => n == DecodeContext) ? null : _decodeMask ??= BuildMask();

    private Tensor BuildMask()
    {
        var mask = new float[DecodeCount * DecodeContext];
        for (int b = 0; b < DecodeCount; b++)
            for (int j = DecodeLengths![b]; j < DecodeContext; j++)
                mask[b * DecodeContext + j] = float.NegativeInfinity;
        using var maskF32 = tensor(mask, [DecodeCount, 1, 1, DecodeContext]);
        return maskF32.to(_dtype, _device).DetachFromDisposeScope();
    }

    /// <summary>
    /// Prefill slice <paramref name="i"/>'s causal mask for attention with the query heads of one KV head folded into
    /// the query axis: [1, 1, G·n, end] additive in the compute dtype, row g·n + k sees key j iff j ≤ start + k. Built on
    /// first use and shared by every layer.
    /// </summary>
    public Tensor PrefillMask(int i, int groupSize)
    {
        _prefillMasks ??= new Tensor?[Prefill.Count];
        if (_prefillMasks[i] is Tensor built)
            return built;
        var s = Prefill[i];
        int n = s.Count, end = s.EndPosition;
        var mask = new float[groupSize * n * end];
        for (int k = 0; k < n; k++)
            Array.Fill(mask, float.NegativeInfinity, k * end + s.StartPosition + k + 1, end - s.StartPosition - k - 1);
        for (int g = 1; g < groupSize; g++)
            Array.Copy(mask, 0, mask, g * n * end, n * end);
        using var maskF32 = tensor(mask, [1, 1, groupSize * n, end]);
        return _prefillMasks[i] = maskF32.to(_dtype, _device).DetachFromDisposeScope();
    }

    public Tensor Tokens { get; }          // [T] int64
    public Tensor Positions { get; }       // [T] int64
    public IReadOnlyList<int> TokenPositions { get; }   // [T] on the host, for kernels that index tables directly
    public Tensor RowPerToken { get; }     // [T] int64, where each token's K/V is written
    public long[] RowPerTokenHost { get; } // the same on the host, for kernels that write the cache directly
    public Tensor LastTokens { get; }      // [S] int64, index of each sequence's last token
    public IReadOnlyList<SequenceSlice> Prefill { get; }
    public IReadOnlyList<Tensor> PrefillRows { get; }   // per prefill slice: [end] int64, rows of positions 0..end-1
    public bool AllDecode { get; }
    public int DecodeCount { get; }
    public Tensor? DecodeTokens { get; }   // [B] int64
    public int DecodeContext { get; }      // max context length over decode rows (L)
    public long[]? DecodeRowTable { get; } // host copy of DecodeRows, for kernels that read the cache directly
    public int[]? DecodeLengths { get; }   // [B] context length of each decode row

    /// <summary>Physical rows of positions 0..length-1, padded with row 0 up to <paramref name="width"/>.</summary>
    private static long[] Rows(KvCache cache, KvBlockTable table, int length, int width)
    {
        var rows = new long[width];
        int block = cache.BlockSize;
        for (int p = 0; p < length; p++)
            rows[p] = (long)table.Blocks[p / block] * block + p % block;
        return rows;
    }

    public void Dispose()
    {
        Tokens.Dispose();
        Positions.Dispose();
        RowPerToken.Dispose();
        LastTokens.Dispose();
        foreach (var r in PrefillRows)
            r.Dispose();
        DecodeTokens?.Dispose();
        _decodeRows?.Dispose();
        _decodeMask?.Dispose();
        foreach (var m in _prefillMasks ?? [])
            m?.Dispose();
    }
}
