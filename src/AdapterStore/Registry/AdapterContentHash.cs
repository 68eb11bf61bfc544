using System.Security.Cryptography;

namespace Serving.AdapterStore.Registry;

/// <summary>An adapter version: SHA-256 over its config and weights files' bytes, in that order (first 16 hex digits).</summary>
internal static class AdapterContentHash
{
    public static string Compute(ReadOnlySpan<byte> config, ReadOnlySpan<byte> weights)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(config);
        hash.AppendData(weights);
        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }
}
