using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// One sequence's part of a step: feed its tokens [StartPosition, StartPosition + TokenCount). <see cref="EmitsToken"/>
/// when that reaches the end of the sequence (a decode row, or the last chunk of a prompt), so the step samples a token for it.
/// <see cref="Blocks"/> is the sequence's KV block table as of this step (ids from the <see cref="KvBlockAllocator"/>), covering
/// at least StartPosition + TokenCount positions.
/// </summary>
public sealed record PlannedRow(RequestId Id, int StartPosition, int TokenCount, bool EmitsToken, IReadOnlyList<int> Blocks);
