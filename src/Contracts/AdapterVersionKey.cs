namespace Serving.Contracts;

/// <summary>One version of one adapter: what a device slot holds. Two versions of an id may be resident at once during a hot swap.</summary>
public readonly record struct AdapterVersionKey(AdapterId Id, string Version)
{
    public override string ToString() => $"{Id}@{Version}";
}
