using Serving.Engine.Runtime;

namespace Serving.Engine.Model;

/// <summary>
/// The host arrays a <see cref="StepIndices"/> is built in, kept from one step to the next on the thread that runs the
/// steps (grown, never shrunk), so that a decode step allocates nothing in proportion to its rows or context: the row
/// table alone is B × L longs, 256 KB a step at 32 rows of 1,000 tokens.
/// </summary>
internal sealed class StepHostArrays
{
    [ThreadStatic] private static StepHostArrays? _idle, _idleSecond;

    private long[]? _rowPerToken, _decodeRows, _indices;
    private int[]? _decodeLengths, _decodeSequences;

    /// <summary>
    /// One of this thread's two idle sets (a step of a model with sliding and whole-context layers holds two), or a new one
    /// while both are in use (a step inside a step).
    /// </summary>
    public static StepHostArrays Rent()
    {
        var arrays = _idle ?? _idleSecond ?? new StepHostArrays();
        if (ReferenceEquals(arrays, _idle))
            _idle = null;
        else if (ReferenceEquals(arrays, _idleSecond))
            _idleSecond = null;
        return arrays;
    }

    /// <summary>Hands the arrays back for the thread's next step; nothing may read them after.</summary>
    public void Return()
    {
        if (_idle is null)
            _idle = this;
        else
            _idleSecond = this;
    }

    /// <summary>[T] physical cache row of each token.</summary>
    public Memory<long> RowPerToken(int tokens)
    {
        return ScratchArrays.Fit(ref _rowPerToken, tokens).AsMemory(0, tokens);
    }

    /// <summary>[B·L] physical rows of each decode row's positions.</summary>
    public Span<long> DecodeRows(int length) => Fit(ref _decodeRows, length);

    /// <summary>[B] context length of each decode row.</summary>
    public Span<int> DecodeLengths(int rows) => Fit(ref _decodeLengths, rows);

    /// <summary>[B] index in the batch's sequences of each decode row.</summary>
    public Span<int> DecodeSequences(int rows) => Fit(ref _decodeSequences, rows);

    /// <summary>Scratch for an index tensor's values on their way to the device.</summary>
    public Span<long> Indices(int length) => Fit(ref _indices, length);

    private static Span<T> Fit<T>(ref T[]? array, int length) => ScratchArrays.Fit(ref array, length).AsSpan(0, length);
}
