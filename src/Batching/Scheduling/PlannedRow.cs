using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// One sequence's part of a step: feed its tokens [StartPosition, StartPosition + TokenCount). <see cref="EmitsToken"/>
/// when that reaches the end of the sequence (a decode row, or the last chunk of a prompt), so the step samples a token for it.
/// <see cref="Blocks"/> are the sequence's KV block tables as of this step, one per KV group (ids from the
/// <see cref="KvBlockAllocator"/>; a sliding group's entries behind the window <see cref="SequenceBlocks.Released"/>), each
/// covering at least StartPosition + TokenCount positions.
/// <para>
/// A decode row may also carry <see cref="DraftTokens"/> speculative tokens (<see cref="ScheduledRequest.DraftTokens"/>): the last
/// DraftTokens of its TokenCount positions lie past the sequence's end, fed so that one step verifies them. The engine reports how
/// many it accepted (<see cref="RowResult.AcceptedDrafts"/>); the KV it wrote for the rest lies past the sequence's cached end and is
/// written over by later steps.
/// </para>
/// </summary>
public sealed record PlannedRow(RequestId Id, int StartPosition, int TokenCount, bool EmitsToken, IReadOnlyList<IReadOnlyList<int>> Blocks, int DraftTokens = 0)
{
    /// <summary>Positions of the sequence itself fed by this row (without the drafts).</summary>
    public int SequenceTokens => TokenCount - DraftTokens;
}
