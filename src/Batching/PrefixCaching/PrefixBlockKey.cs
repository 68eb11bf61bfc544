namespace Serving.Batching.PrefixCaching;

/// <summary>
/// What one full KV block of a prompt holds: 128 bits of SHA-256 over its tokens, the key of the block before it, and (for
/// the first block) the <see cref="PrefixCacheSeed"/> of what produced the KV. Two blocks with equal keys hold the same KV.
/// </summary>
public readonly record struct PrefixBlockKey(UInt128 Value)
{
    public override string ToString() => Value.ToString("x32", System.Globalization.CultureInfo.InvariantCulture);
}
