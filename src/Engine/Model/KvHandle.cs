namespace Serving.Engine.Model;

/// <summary>A sequence's row in the <see cref="KvCache"/>; valid from <see cref="KvCache.Allocate"/> until <see cref="KvCache.Release"/>.</summary>
internal readonly record struct KvHandle(int Slot);
