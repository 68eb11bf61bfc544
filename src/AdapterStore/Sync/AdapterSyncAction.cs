namespace Serving.AdapterStore.Sync;

/// <summary>What one pass of <see cref="AdapterStoreSync"/> did with one adapter of the shared store.</summary>
public enum AdapterSyncAction
{
    /// <summary>New in the store: registered as a shared adapter.</summary>
    Registered,

    /// <summary>Changed in the store: registered again (a hot swap).</summary>
    Replaced,

    /// <summary>Refused (a bad name, missing files, an invalid adapter): logged once per version, not retried until it changes.</summary>
    Skipped,

    /// <summary>Could not be fetched now (an outage): retried next pass.</summary>
    NotFetched,

    /// <summary>Gone from the store: its registration removed.</summary>
    Unregistered,
}
