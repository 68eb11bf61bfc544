namespace Serving.Engine.Model;

/// <summary>
/// One sequence's part of a packed batch: tokens [Offset, Offset + Count) of the batch sit at positions
/// [StartPosition, StartPosition + Count) of the sequence whose KV pages are <see cref="Kv"/>. Count = 1 is a decode
/// row; Count &gt; 1 a prefill (or a prefill chunk continuing from StartPosition).
/// </summary>
public readonly record struct SequenceSlice(KvBlockTable Kv, int Offset, int Count, int StartPosition)
{
    public int EndPosition => StartPosition + Count;
}
