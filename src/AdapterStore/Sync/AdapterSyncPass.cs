namespace Serving.AdapterStore.Sync;

/// <summary>One pass of <see cref="AdapterStoreSync"/>: the listing's error (then nothing changed), or what happened to each adapter.</summary>
public sealed record AdapterSyncPass(string? ListError, IReadOnlyList<AdapterSyncEvent> Events)
{
    /// <summary>Registrations added, replaced or removed.</summary>
    public int Changes => Events.Count(e => e.Action is AdapterSyncAction.Registered or AdapterSyncAction.Replaced or AdapterSyncAction.Unregistered);
}
