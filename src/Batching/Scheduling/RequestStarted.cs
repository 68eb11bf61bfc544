using Serving.Contracts;

namespace Serving.Batching.Scheduling;

/// <summary>
/// A request admitted this step with its device slots. <see cref="Resumed"/>: it was preempted before and recomputes its
/// prompt and the tokens it had generated (its slots may differ from last time; its adapter versions do not).
/// <see cref="CachedTokens"/>: leading positions whose KV was reused from the prefix cache; its first row starts there.
/// </summary>
public sealed record RequestStarted(RequestId Id, IReadOnlyList<AdapterSlotWeight> Slots, bool Resumed, int CachedTokens = 0);
