namespace Serving.LoadTests.Scenarios;

/// <summary>SplitMix64, so a scenario and seed give the same request plan on every machine and runtime.</summary>
internal sealed class LoadRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public int Next(int exclusiveMax) => (int)(NextDouble() * exclusiveMax);

    /// <summary>Standard normal (Box–Muller).</summary>
    public double NextGaussian() => Math.Sqrt(-2 * Math.Log(1 - NextDouble())) * Math.Cos(2 * Math.PI * NextDouble());

    /// <summary>Exponential with the given mean.</summary>
    public double NextExponential(double mean) => -Math.Log(1 - NextDouble()) * mean;
}
