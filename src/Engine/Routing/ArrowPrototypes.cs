using Serving.Contracts.Lora;
using Serving.Engine.Lora;

namespace Serving.Engine.Routing;

/// <summary>
/// Arrow routing prototypes of one adapter version (Ostapenko et al. 2024; PEFT's <c>arrow</c>): for each adapted module,
/// the unit vector v that ΔW = scale·B·A stretches most — its top right singular vector, of length In. Computed once per
/// version by power iteration on ΔWᵀΔW = Aᵀ·(BᵀB)·A without forming ΔW, reduced to the r-dimensional row space of A:
/// <code>
/// A = L·Q            Gram–Schmidt on A's rows: Q [r, in] orthonormal rows, L [r, r] lower triangular
/// S = Lᵀ·(BᵀB)·L     [r, r]:  ΔWᵀΔW = Qᵀ·S·Q
/// u = top eigenvector of S by power iteration (cheap: r² per step, so it runs to convergence)
/// v = Qᵀ·u
/// </code>
/// The scale does not change the direction, and the sign of v is irrelevant (routing uses |h·v|).
/// </summary>
public sealed record ArrowPrototypes(string Adapter, IReadOnlyDictionary<(int Layer, LoraTarget Target), float[]> Vectors)
{
    public const int MaxIterations = 20_000;

    public static ArrowPrototypes Compute(LoraAdapterWeights weights)
    {
        var vectors = new Dictionary<(int, LoraTarget), float[]>();
        // An expert's module adapts the tokens its router sends it, not the layer's input as routing reads it.
        foreach (var m in weights.Modules.Where(m => m.Expert is null))
            vectors[(m.Layer, m.Target)] = TopRightSingularVector(m.A, m.B, m.Rank);
        return new ArrowPrototypes(weights.Name, vectors);
    }

    /// <param name="a">A, [r, in] row-major.</param>
    /// <param name="b">B, [out, r] row-major.</param>
    /// <param name="rank">r.</param>
    /// <returns>Unit vector of length in; all zeros when ΔW = 0 (e.g. B at its zero initialisation).</returns>
    public static float[] TopRightSingularVector(float[] a, float[] b, int rank)
    {
        int inF = a.Length / rank, outF = b.Length / rank;
        var q = new double[rank * inF];
        var l = new double[rank * rank];
        for (int i = 0; i < rank; i++)
        {
            var row = new double[inF];
            for (int k = 0; k < inF; k++)
                row[k] = a[i * inF + k];
            for (int j = 0; j < i; j++)
            {
                double dot = 0;
                for (int k = 0; k < inF; k++)
                    dot += row[k] * q[j * inF + k];
                l[i * rank + j] = dot;
                for (int k = 0; k < inF; k++)
                    row[k] -= dot * q[j * inF + k];
            }

            double norm = Math.Sqrt(row.Sum(x => x * x));
            l[i * rank + i] = norm;
            if (norm > 1e-12)
                for (int k = 0; k < inF; k++)
                    q[i * inF + k] = row[k] / norm;          // a dependent row leaves a zero row of Q
        }

        var g = new double[rank * rank];                     // BᵀB
        for (int i = 0; i < rank; i++)
            for (int j = 0; j < rank; j++)
            {
                double sum = 0;
                for (int o = 0; o < outF; o++)
                    sum += (double)b[o * rank + i] * b[o * rank + j];
                g[i * rank + j] = sum;
            }

        var s = new double[rank * rank];                     // Lᵀ·G·L
        for (int i = 0; i < rank; i++)
            for (int j = 0; j < rank; j++)
            {
                double sum = 0;
                for (int x = 0; x < rank; x++)
                    for (int y = 0; y < rank; y++)
                        sum += l[x * rank + i] * g[x * rank + y] * l[y * rank + j];
                s[i * rank + j] = sum;
            }

        var u = TopEigenvector(s, rank);
        var v = new float[inF];
        for (int j = 0; j < rank; j++)
            for (int k = 0; k < inF; k++)
                v[k] += (float)(u[j] * q[j * inF + k]);
        return v;
    }

    /// <summary>Power iteration on a symmetric positive semi-definite r×r matrix, until the direction stops moving.</summary>
    private static double[] TopEigenvector(double[] s, int r)
    {
        var u = new double[r];
        for (int i = 0; i < r; i++)
            u[i] = 1.0 + 0.01 * i;                           // deterministic, not orthogonal to any eigenvector in practice
        if (!Normalize(u))
            return u;
        var next = new double[r];
        for (int it = 0; it < MaxIterations; it++)
        {
            for (int i = 0; i < r; i++)
            {
                double sum = 0;
                for (int j = 0; j < r; j++)
                    sum += s[i * r + j] * u[j];
                next[i] = sum;
            }

            if (!Normalize(next))
                return new double[r];                        // S = 0: ΔW = 0
            double change = 0;
            for (int i = 0; i < r; i++)
                change = Math.Max(change, Math.Abs(next[i] - u[i]));
            (u, next) = (next, u);
            if (change < 1e-12)
                break;
        }

        return u;
    }

    private static bool Normalize(double[] v)
    {
        double norm = Math.Sqrt(v.Sum(x => x * x));
        if (norm == 0 || !double.IsFinite(norm))
            return false;
        for (int k = 0; k < v.Length; k++)
            v[k] /= norm;
        return true;
    }
}
