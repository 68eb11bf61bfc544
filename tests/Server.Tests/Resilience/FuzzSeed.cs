namespace Serving.Server.Tests.Resilience;

/// <summary>
/// The fuzzers' seeds: fixed by default, so every CI run sends the same inputs; <c>SERVING_FUZZ_SEED=random</c> draws fresh
/// ones for a soak (with <c>SERVING_FUZZ_ITERATIONS</c> / <c>SERVING_PATH_FUZZ_ITERATIONS</c>). A failure always prints the
/// input that caused it, so a random run's finding can be turned into a fixed case.
/// </summary>
internal static class FuzzSeed
{
    public static bool IsRandom => string.Equals(Environment.GetEnvironmentVariable("SERVING_FUZZ_SEED"), "random", StringComparison.OrdinalIgnoreCase);

    /// <summary>The CsCheck seed to sample with: <paramref name="fixedSeed"/>, or null (a fresh one) in a random run.</summary>
    public static string? ForCsCheck(string fixedSeed) => IsRandom ? null : fixedSeed;

    /// <summary>The <see cref="Random"/> seed to use: <paramref name="fixedSeed"/>, or a fresh one in a random run.</summary>
    public static int ForRandom(int fixedSeed) => IsRandom ? Random.Shared.Next() : fixedSeed;
}
