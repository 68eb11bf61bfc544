using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Index tensors derived once per step from a <see cref="ForwardBatch"/> and the sequences' block tables, shared by every
/// layer. Decode rows (one token) are attended together as one batch; prefill slices one at a time. All "rows" are physical
/// rows of the paged cache (<see cref="KvCache.PhysicalRow"/>). The host tables live in this thread's
/// <see cref="StepHostArrays"/> until <see cref="Dispose"/>; the tensors only the libtorch path reads are built on first use.
/// With a sliding window W (Mistral, Phi-3) a token at position p attends to positions p − W + 1 … p only: a decode row's
/// table and length hold just those, and a prefill slice's rows start at its first token's window.
/// </summary>
internal sealed class StepIndices : IDisposable
{
    /// <param name="batch">The step's packed tokens.</param>
    /// <param name="cache">Must already hold blocks for every position the batch writes.</param>
    /// <param name="dtype">Compute dtype (of the decode mask).</param>
    /// <param name="device">Where the index tensors go.</param>
    /// <param name="slidingWindow">Positions a token attends to, itself included (config.json's <c>sliding_window</c>); null: all before it.</param>
    /// <param name="group">The KV group whose block tables the rows are of (<see cref="KvCache.Groups"/>).</param>
    /// <param name="bidirectional">
    /// A prefill slice's tokens also attend to the slice's later positions within the window (|q − k| &lt; W,
    /// <see cref="Serving.Contracts.Configuration.ModelConfig.BidirectionalAttention"/>); its slices are whole prompts.
    /// </param>
    public StepIndices(ForwardBatch batch, KvCache cache, ScalarType dtype, Device device, int? slidingWindow = null, int group = 0, bool bidirectional = false)
    {
        _bidirectional = bidirectional;
        if (slidingWindow is < 1)
            throw new ArgumentOutOfRangeException(nameof(slidingWindow), slidingWindow, "a sliding window holds at least the token itself");
        _window = slidingWindow ?? int.MaxValue;
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
                rowPerToken[s.Offset + k] = cache.PhysicalRow(s.Kv, group, s.StartPosition + k);
            if (s.Count == 1)
            {
                decodeSequences[decode++] = i;
                DecodeContext = Math.Max(DecodeContext, Math.Min(s.EndPosition, _window));
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
                lengths[b] = Math.Min(s.EndPosition, _window);
                Rows(cache, s.Kv.Group(group), s.EndPosition - lengths[b], s.EndPosition, rows.Slice(b * DecodeContext, DecodeContext));
            }
        }

        if (prefill is not null)
        {
            var prefillRows = new Tensor[prefill.Count];
            for (int i = 0; i < prefill.Count; i++)
            {
                var s = prefill[i];
                int first = FirstAttended(s.StartPosition);
                var rows = _host.Indices(s.EndPosition - first);
                Rows(cache, s.Kv.Group(group), first, s.EndPosition, rows);
                prefillRows[i] = IndexTensor(rows);
            }

            PrefillRows = prefillRows;
        }
        else
            PrefillRows = [];
    }

    private readonly StepHostArrays _host;
    private readonly int _window;
    private readonly bool _bidirectional;
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

    /// <summary>The first position a token at <paramref name="position"/> attends to.</summary>
    private int FirstAttended(int position) => Math.Max(0, position - (_window - 1));

    /// <summary>
    /// Prefill slice <paramref name="i"/>'s causal mask for attention with the query heads of one KV head folded into
    /// the query axis: [1, 1, G·n, end − first] additive in the compute dtype (key column c is position first + c, first
    /// the slice's first token's window start), row g·n + k sees position j iff FirstAttended(start + k) ≤ j ≤ start + k
    /// (bidirectional: ≤ min(end − 1, start + k + W − 1)). Built on first use and shared by every layer.
    /// </summary>
    public unsafe Tensor PrefillMask(int i, int groupSize)
    {
        _prefillMasks ??= new Tensor?[Prefill.Count];
        if (_prefillMasks[i] is Tensor built)
            return built;
        var s = Prefill[i];
        int n = s.Count, first = FirstAttended(s.StartPosition), width = s.EndPosition - first;
        using var maskF32 = zeros([1, 1, groupSize * n, width], ScalarType.Float32);
        var mask = new Span<float>(CpuTensorMemory.Address(maskF32), groupSize * n * width);
        for (int k = 0; k < n; k++)
        {
            int position = s.StartPosition + k, from = FirstAttended(position) - first;
            int to = (_bidirectional ? (int)Math.Min(s.EndPosition - 1L, position + (_window - 1L)) : position) - first;
            var row = mask.Slice(k * width, width);
            row[..from].Fill(float.NegativeInfinity);
            row[(to + 1)..].Fill(float.NegativeInfinity);
        }

        for (int g = 1; g < groupSize; g++)
            mask[..(n * width)].CopyTo(mask.Slice(g * n * width, n * width));
        return _prefillMasks[i] = maskF32.to(_dtype, _device).DetachFromDisposeScope();
    }

    public Tensor Tokens { get; }          // [T] int64
    public IReadOnlyList<int> TokenPositions { get; }   // [T] on the host, for kernels that index tables directly
    public IReadOnlyList<SequenceSlice> Prefill { get; }
    public IReadOnlyList<Tensor> PrefillRows { get; }   // per prefill slice: [end − first] int64, rows of positions first..end-1 (first: its window's start, 0 without one)
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

    /// <summary>Physical rows of positions first..end-1 into <paramref name="rows"/>, padded with row 0 past them.</summary>
    private static void Rows(KvCache cache, IReadOnlyList<int> blocks, int first, int end, Span<long> rows)
    {
        int block = cache.BlockSize;
        for (int p = first; p < end; p++)
            rows[p - first] = (long)blocks[p / block] * block + p % block;
        rows[(end - first)..].Clear();
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
