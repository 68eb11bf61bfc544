namespace Serving.Engine.Sampling;

/// <summary>SplitMix64: a tiny generator whose output depends only on the seed (System.Random's algorithm may change between runtimes).</summary>
public sealed class SeededRandom(ulong seed)
{
    private ulong _state = seed;

    public static SeededRandom FromEntropy() => new(BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)));

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 bits of precision.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
