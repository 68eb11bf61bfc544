namespace Serving.AdapterStore.Tiers;

/// <summary>One version of one adapter: what a device slot holds. Two versions of an id may be resident at once during a hot swap.</summary>
internal readonly record struct AdapterVersionKey(AdapterId Id, string Version)
{
    public override string ToString() => $"{Id}@{Version}";
}
