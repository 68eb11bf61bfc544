using Serving.Engine.Model;

namespace Serving.Engine.Generation;

/// <summary>
/// One sequence's part of a step, as its owner planned it: feed tokens [<see cref="StartPosition"/>,
/// StartPosition + <see cref="TokenCount"/>) of <see cref="Sequence"/>, writing their KV into <see cref="Kv"/>. The caller
/// (in serving, the scheduler) is the one owner of how far a sequence's KV reaches; the stepper only reads it from here.
/// </summary>
/// <param name="Sequence">Its tokens and sampling state.</param>
/// <param name="StartPosition">First position fed; every earlier position's KV is already in <paramref name="Kv"/>'s blocks.</param>
/// <param name="TokenCount">Positions fed (≥ 1); when they reach the sequence's end the row samples a token.</param>
/// <param name="Kv">The sequence's block table, holding at least StartPosition + TokenCount positions.</param>
public readonly record struct StepRow(SequenceState Sequence, int StartPosition, int TokenCount, KvBlockTable Kv)
{
    public int EndPosition => StartPosition + TokenCount;

    /// <summary>The row reaches the end of the sequence, so the step samples its next token.</summary>
    public bool EmitsToken => EndPosition == Sequence.TotalTokens;
}
