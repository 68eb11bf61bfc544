using System.Security.Cryptography;
using System.Text;

namespace Serving.Batching.PrefixCaching;

/// <summary>
/// Everything besides the tokens that decides a prompt's KV, hashed into the first link of its key chain: the base model,
/// the adapters by <em>content version</em> with their weights (sorted, so a mix's order does not matter), the tenant, and
/// the request's optional <c>cache_salt</c>. Blocks of different seeds never match, so a new adapter version, another
/// tenant or another salt can never read a cached block it did not produce.
/// </summary>
public readonly record struct PrefixCacheSeed(UInt128 Value)
{
    /// <param name="model">The served model's identity (its id and checkpoint).</param>
    /// <param name="adapters">(content version, weight) of every adapter the KV is computed with; empty for the base model.</param>
    /// <param name="tenant">The caller's tenant; empty for anonymous callers, who share one partition.</param>
    /// <param name="salt">The request's <c>cache_salt</c>, or null.</param>
    public static PrefixCacheSeed Create(string model, IEnumerable<(string Version, double Weight)> adapters, string tenant, string? salt)
    {
        var text = new StringBuilder();
        // Length-prefixed fields: no two different inputs serialise to the same text.
        void Field(string value) => text.Append(value.Length).Append(':').Append(value).Append(';');
        Field("serving-prefix-cache-v1");
        Field(model);
        foreach (var (version, weight) in adapters.OrderBy(a => a.Version, StringComparer.Ordinal).ThenBy(a => a.Weight))
        {
            Field(version);
            Field(weight.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        }

        Field("tenant");
        Field(tenant);
        Field(salt is null ? "" : "salt");
        Field(salt ?? "");
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()), hash);
        return new PrefixCacheSeed(System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash));
    }
}
