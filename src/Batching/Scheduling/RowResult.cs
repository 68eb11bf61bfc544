namespace Serving.Batching.Scheduling;

/// <summary>What the engine reports for one planned row: whether it emitted a token and whether the sequence finished.</summary>
public readonly record struct RowResult(bool EmittedToken, bool Finished);
