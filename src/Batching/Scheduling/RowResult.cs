namespace Serving.Batching.Scheduling;

/// <summary>
/// What the engine reports for one planned row: whether it emitted a token, whether the sequence finished, and whether
/// the row failed (its KV may not have been written: the request ends and none of its blocks is cached). A row with draft tokens
/// that emitted a token also says how many of its drafts the sequence accepted (its leading ones): the step then added
/// AcceptedDrafts + 1 tokens.
/// </summary>
public readonly record struct RowResult(bool EmittedToken, bool Finished, bool Failed = false, int AcceptedDrafts = 0);
