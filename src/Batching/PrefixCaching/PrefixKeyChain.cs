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
        var block = new int[blockSize];
        UInt128 previous = seed.Value;
        for (int b = 0; b < keys.Length; b++)
        {
            for (int t = 0; t < blockSize; t++)
                block[t] = prompt[b * blockSize + t];
            keys[b] = Next(previous, block);
            previous = keys[b].Value;
        }

        return keys;
    }

    /// <summary>The key of the block holding <paramref name="tokens"/> after the block (or seed) <paramref name="previous"/>.</summary>
    public static PrefixBlockKey Next(UInt128 previous, ReadOnlySpan<int> tokens)
    {
        Span<byte> input = stackalloc byte[16 + 4 * tokens.Length];
        Span<byte> hash = stackalloc byte[32];
        BinaryPrimitives.WriteUInt128LittleEndian(input, previous);
        for (int t = 0; t < tokens.Length; t++)
            BinaryPrimitives.WriteInt32LittleEndian(input[(16 + 4 * t)..], tokens[t]);
        SHA256.HashData(input, hash);
        return new PrefixBlockKey(BinaryPrimitives.ReadUInt128LittleEndian(hash));
    }
}
