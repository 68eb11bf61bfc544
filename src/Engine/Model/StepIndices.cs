using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Index tensors derived once per step from a <see cref="ForwardBatch"/> and the sequences' block tables, shared by every
/// layer. Decode rows (one token) are attended together as one batch; prefill slices one at a time. All "rows" are physical
/// rows of the paged cache (<see cref="KvCache.PhysicalRow"/>). The host tables live in this thread's
/// <see cref="StepHostArrays"/> until <see cref="Dispose"/>; the tensors only the libtorch path reads are built on first use.
/// </summary>
internal sealed class StepIndices : IDisposable
{
    /// <param name="batch">The step's packed tokens.</param>
    /// <param name="cache">Must already hold blocks for every position the batch writes.</param>
    /// <param name="dtype">Compute dtype (of the decode mask).</param>
    /// <param name="device">Where the index tensors go.</param>
    public StepIndices(ForwardBatch batch, KvCache cache, ScalarType dtype, Device device)
    {
        _host = StepHostArrays.Rent();
        _batch = batch;
        _dtype = dtype;
        _device = device;
        int t = batch.TokenCount, sequences = batch.Sequences.Count, decode = 0;
        var rowPerToken = _host.RowPerToken(t).Span;
        var decodeSequences = _host.DecodeSequences(sequences);
        List<SequenceSlice>? prefill = null;
        for (int i = 0; i < sequences; i++)
        {
            var s = batch.Sequences[i];
            for (int k = 0; k < s.Count; k++)
                rowPerToken[s.Offset + k] = cache.PhysicalRow(s.Kv, s.StartPosition + k);
            if (s.Count == 1)
            {
                decodeSequences[decode++] = i;
                DecodeContext = Math.Max(DecodeContext, s.EndPosition);
            }
            else
                (prefill ??= []).Add(s);
        }

        TokenPositions = batch.Positions;
        Prefill = prefill ?? (IReadOnlyList<SequenceSlice>)[];
        AllDecode = prefill is null;
        DecodeCount = decode;
        Tokens = IndexTensor(batch.Tokens);
        if (decode > 0)
        {
            var rows = _host.DecodeRows(decode * DecodeContext);
            var lengths = _host.DecodeLengths(decode);
            for (int b = 0; b < decode; b++)
            {
                var s = batch.Sequences[decodeSequences[b]];
                lengths[b] = s.EndPosition;
                Rows(cache, s.Kv, s.EndPosition, rows.Slice(b * DecodeContext, DecodeContext));
            }
        }

        if (prefill is not null)
        {
            var prefillRows = new Tensor[prefill.Count];
            for (int i = 0; i < prefill.Count; i++)
            {
                var s = prefill[i];
                var rows = _host.Indices(s.EndPosition);
                Rows(cache, s.Kv, s.EndPosition, rows);
                prefillRows[i] = IndexTensor(rows);
            }

            PrefillRows = prefillRows;
        }
        else
            PrefillRows = [];
    }

    private readonly StepHostArrays _host;
    private readonly ForwardBatch _batch;
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private Tensor? _positions, _rowPerToken, _lastTokens, _decodeTokens, _decodeRows, _decodeMask;
    private Tensor?[]? _prefillMasks;
    private bool _disposed;

    /// <summary>
    /// [B·L] int64, rows of positions 0..L-1 per decode row (row 0 past its end); built on first use, since the CPU
    /// attention kernel reads <see cref="DecodeRowTable"/> instead. Owned by this object, outside any dispose scope.
    /// </summary>
    public Tensor? DecodeRows => DecodeCount == 0 ? null : _decodeRows ??= IndexTensor(DecodeRowTable).DetachFromDisposeScope();

    /// <summary>[B, 1, 1, L] additive (0 inside each sequence, −∞ beyond its end), compute dtype; null when all decode rows have the same length. Built on first use.</summary>
    public Tensor? DecodeMask
    {
        get
        {
            if (DecodeCount == 0)
                return null;
            foreach (int n in DecodeLengths)
                if (n != DecodeContext)
                    return _decodeMask ??= BuildMask();
            return null;
        }
    }

    private unsafe Tensor BuildMask()
    {
        using var maskF32 = zeros([DecodeCount, 1, 1, DecodeContext], ScalarType.Float32);
        var mask = new Span<float>(CpuTensorMemory.Address(maskF32), DecodeCount * DecodeContext);
        var lengths = DecodeLengths;
        for (int b = 0; b < DecodeCount; b++)
            mask.Slice(b * DecodeContext + lengths[b], DecodeContext - lengths[b]).Fill(float.NegativeInfinity);
        return maskF32.to(_dtype, _device).DetachFromDisposeScope();
    }

    /// <summary>
    /// Prefill slice <paramref name="i"/>'s causal mask for attention with the query heads of one KV head folded into
    /// the query axis: [1, 1, G·n, end] additive in the compute dtype, row g·n + k sees key j iff j ≤ start + k. Built on
    /// first use and shared by every layer.
    /// </summary>
    public unsafe Tensor PrefillMask(int i, int groupSize)
    {
        _prefillMasks ??= new Tensor?[Prefill.Count];
        if (_prefillMasks[i] is Tensor built)
            return built;
        var s = Prefill[i];
        int n = s.Count, end = s.EndPosition;
        using var maskF32 = zeros([1, 1, groupSize * n, end], ScalarType.Float32);
        var mask = new Span<float>(CpuTensorMemory.Address(maskF32), groupSize * n * end);
        for (int k = 0; k < n; k++)
            mask.Slice(k * end + s.StartPosition + k + 1, end - s.StartPosition - k - 1).Fill(float.NegativeInfinity);
        for (int g = 1; g < groupSize; g++)
            mask[..(n * end)].CopyTo(mask.Slice(g * n * end, n * end));
        return _prefillMasks[i] = maskF32.to(_dtype, _device).DetachFromDisposeScope();
    }

    public Tensor Tokens { get; }          // [T] int64
    public IReadOnlyList<int> TokenPositions { get; }   // [T] on the host, for kernels that index tables directly
    public IReadOnlyList<SequenceSlice> Prefill { get; }
    public IReadOnlyList<Tensor> PrefillRows { get; }   // per prefill slice: [end] int64, rows of positions 0..end-1
    public bool AllDecode { get; }
    public int DecodeCount { get; }
    public int DecodeContext { get; }      // max context length over decode rows (L)

    /// <summary>[T] int64 positions; built on first use (the libtorch path's RoPE tables).</summary>
    public Tensor Positions => _positions ??= IndexTensor(_batch.Positions).DetachFromDisposeScope();

    /// <summary>[T] int64, where each token's K/V is written; built on first use (the libtorch path's cache write).</summary>
    public Tensor RowPerToken => _rowPerToken ??= IndexTensor(RowPerTokenHost.Span).DetachFromDisposeScope();

    /// <summary>[S] int64, index of each sequence's last token; built on first use.</summary>
    public Tensor LastTokens => _lastTokens ??= LastTokenIndices().DetachFromDisposeScope();

    /// <summary>[B] int64, the decode rows' token indices; built on first use, null without decode rows.</summary>
    public Tensor? DecodeTokens => DecodeCount == 0 ? null : _decodeTokens ??= DecodeTokenIndices().DetachFromDisposeScope();

    /// <summary>[T] where each token's K/V is written, on the host, for kernels that write the cache directly.</summary>
    public ReadOnlyMemory<long> RowPerTokenHost => Live(_host).RowPerToken(_batch.TokenCount);

    /// <summary>[B·L] the host copy of <see cref="DecodeRows"/>, for kernels that read the cache directly; empty without decode rows.</summary>
    public ReadOnlySpan<long> DecodeRowTable => Live(_host).DecodeRows(DecodeCount * DecodeContext);

    /// <summary>[B] context length of each decode row; empty without decode rows.</summary>
    public ReadOnlySpan<int> DecodeLengths => Live(_host).DecodeLengths(DecodeCount);

    private StepHostArrays Live(StepHostArrays host) => _disposed ? throw new ObjectDisposedException(nameof(StepIndices)) : host;

    private Tensor LastTokenIndices()
    {
        var indices = _host.Indices(_batch.Sequences.Count);
        for (int i = 0; i < indices.Length; i++)
            indices[i] = _batch.Sequences[i].Offset + _batch.Sequences[i].Count - 1;
        return IndexTensor(indices);
    }

    private Tensor DecodeTokenIndices()
    {
        var indices = _host.Indices(DecodeCount);
        for (int i = 0, b = 0; i < _batch.Sequences.Count; i++)
            if (_batch.Sequences[i].Count == 1)
                indices[b++] = _batch.Sequences[i].Offset;
        return IndexTensor(indices);
    }

    /// <summary>Physical rows of positions 0..length-1 into <paramref name="rows"/>, padded with row 0 past them.</summary>
    private static void Rows(KvCache cache, KvBlockTable table, int length, Span<long> rows)
    {
        int block = cache.BlockSize;
        var blocks = table.Blocks;
        for (int p = 0; p < length; p++)
            rows[p] = (long)blocks[p / block] * block + p % block;
        rows[length..].Clear();
    }

    private Tensor IndexTensor(IReadOnlyList<int> values)
    {
        var indices = _host.Indices(values.Count);
        for (int i = 0; i < indices.Length; i++)
            indices[i] = values[i];
        return IndexTensor(indices);
    }

    /// <summary>[n] int64 on the step's device holding <paramref name="values"/>.</summary>
    private unsafe Tensor IndexTensor(ReadOnlySpan<long> values)
    {
        var host = empty(values.Length, ScalarType.Int64);
        if (values.Length > 0)
            values.CopyTo(new Span<long>(CpuTensorMemory.Address(host), values.Length));
        if (_device.type == TorchSharp.DeviceType.CPU)
            return host;
        using (host)
            return host.to(_device);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Tokens.Dispose();
        foreach (var r in PrefillRows)
            r.Dispose();
        _positions?.Dispose();
        _rowPerToken?.Dispose();
        _lastTokens?.Dispose();
        _decodeTokens?.Dispose();
        _decodeRows?.Dispose();
        _decodeMask?.Dispose();
        foreach (var m in _prefillMasks ?? [])
            m?.Dispose();
        _host.Return();
    }
}
