using Serving.Engine.Model;

namespace Serving.Engine.Generation;

/// <summary>
/// One sequence's part of a step, as its owner planned it: feed tokens [<see cref="StartPosition"/>,
/// StartPosition + <see cref="TokenCount"/>) of <see cref="Sequence"/>, writing their KV into <see cref="Kv"/>. The caller
/// (in serving, the scheduler) is the one owner of how far a sequence's KV reaches; the stepper only reads it from here.
/// <para>
/// A row that reaches the sequence's end may carry <see cref="Drafts"/>: tokens proposed to follow it (speculative decoding).
/// They are fed at the positions after the sequence's end, each as a decode row of its own over the same block table, so one
/// step computes the next-token logits after every draft; the sequence then accepts its sampled tokens while each equals the
/// draft it follows (<see cref="GenerationStepper.Step"/>).
/// </para>
/// </summary>
/// <param name="Sequence">Its tokens and sampling state.</param>
/// <param name="StartPosition">First position fed; every earlier position's KV is already in <paramref name="Kv"/>'s blocks.</param>
/// <param name="TokenCount">Positions of the sequence fed (≥ 1); when they reach the sequence's end the row samples a token.</param>
/// <param name="Kv">The sequence's block table, holding at least StartPosition + TokenCount positions, and the drafts' too.</param>
/// <param name="Drafts">Proposed next tokens (only on a row that reaches the sequence's end); null or empty: none.</param>
public readonly record struct StepRow(SequenceState Sequence, int StartPosition, int TokenCount, KvBlockTable Kv, IReadOnlyList<int>? Drafts = null)
{
    public int EndPosition => StartPosition + TokenCount;

    /// <summary>The row reaches the end of the sequence, so the step samples its next token.</summary>
    public bool EmitsToken => EndPosition == Sequence.TotalTokens;

    public int DraftCount => Drafts?.Count ?? 0;
}
