using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Serving.Batching.PrefixCaching;

/// <summary>
/// The key chain of a prompt (vLLM's automatic prefix caching, made collision-resistant): block i's key is
/// <c>SHA-256(key(i − 1) ‖ tokens of block i)</c> cut to 128 bits, with key(−1) = the seed. Only full blocks get keys.
/// </summary>
public static class PrefixKeyChain
{
    /// <summary>Keys of the ⌊prompt / blockSize⌋ full blocks of <paramref name="prompt"/>, in order.</summary>
    public static PrefixBlockKey[] Compute(PrefixCacheSeed seed, IReadOnlyList<int> prompt, int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        var keys = new PrefixBlockKey[prompt.Count / blockSize];
        var input = new byte[16 + 4 * blockSize];
        Span<byte> hash = stackalloc byte[32];
        UInt128 previous = seed.Value;
        for (int b = 0; b < keys.Length; b++)
        {
            BinaryPrimitives.WriteUInt128LittleEndian(input, previous);
            for (int t = 0; t < blockSize; t++)
                BinaryPrimitives.WriteInt32LittleEndian(input.AsSpan(16 + 4 * t), prompt[b * blockSize + t]);
            SHA256.HashData(input, hash);
            previous = BinaryPrimitives.ReadUInt128LittleEndian(hash);
            keys[b] = new PrefixBlockKey(previous);
        }

        return keys;
    }
}
