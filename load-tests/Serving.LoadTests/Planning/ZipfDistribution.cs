using Serving.LoadTests.Scenarios;

namespace Serving.LoadTests.Planning;

/// <summary>Picks index k in [0, n) with probability ∝ 1/(k+1)^s (s = 0 is uniform), by binary search over the cumulative weights.</summary>
internal sealed class ZipfDistribution
{
    private readonly double[] _cumulative;

    public ZipfDistribution(int n, double s)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        _cumulative = new double[n];
        double total = 0;
        for (int k = 0; k < n; k++)
            _cumulative[k] = total += 1.0 / Math.Pow(k + 1, s);
    }

    public int Count => _cumulative.Length;

    /// <summary>P(k), for reports and tests.</summary>
    public double Probability(int k) => (_cumulative[k] - (k == 0 ? 0 : _cumulative[k - 1])) / _cumulative[^1];

    public int Sample(LoadRandom random)
    {
        double u = random.NextDouble() * _cumulative[^1];
        int index = Array.BinarySearch(_cumulative, u);
        index = index < 0 ? ~index : index + 1;
        return Math.Min(index, _cumulative.Length - 1);
    }
}
