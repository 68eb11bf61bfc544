namespace Serving.AdapterStore.Sync;

/// <summary>One adapter's outcome in a sync pass: its name in the store, its URI, the version registered, or why not.</summary>
public sealed record AdapterSyncEvent(AdapterSyncAction Action, string Name, string Uri, string? Version = null, string? Error = null);
