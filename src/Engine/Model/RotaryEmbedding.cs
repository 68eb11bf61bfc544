using Serving.Contracts.Configuration;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Precomputed RoPE tables in HF's rotate-half layout. <c>cos, sin: [maxPositions, R/2]</c> (float32 maths, stored
/// in the compute dtype), R the rotated dimensions (<see cref="ModelConfig.RotaryDim"/>: D, or Phi-4-mini's 96 of 128).
/// Applied as <c>out₁ = x₁·cos − x₂·sin, out₂ = x₂·cos + x₁·sin</c> where x₁, x₂ are the two halves of each head's first R
/// dimensions; the rest of the head passes through.
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _cos;
    private readonly Tensor _sin;

    public RotaryEmbedding(ModelConfig config, int maxPositions, ScalarType dtype, Device device)
    {
        MaxPositions = maxPositions;
        _headDim = config.HeadDim;
        _rotaryDim = config.RotaryDim;
        // Partial rotary: the libtorch path's swap of a head's rotated halves, the rest in place, as one index.
        int half = _rotaryDim / 2;
        _swapHalves = _rotaryDim == _headDim ? null
            : tensor(Enumerable.Range(0, _headDim).Select(i => (long)(i < half ? i + half : i < _rotaryDim ? i - half : i)).ToArray(), ScalarType.Int64, device);
        double[] invFreq = InverseFrequencies(config, maxPositions);
        var cos = new float[maxPositions * invFreq.Length];
        var sin = new float[cos.Length];
        double positionScale = config.RopeScaling.Kind == RopeScalingKind.Linear ? 1.0 / config.RopeScaling.Factor : 1.0;
        // YaRN and longrope scale q and k alike, so every attention score by its square (HF multiplies the tables).
        double magnitude = config.RopeScaling.Kind is RopeScalingKind.Yarn or RopeScalingKind.LongRope ? config.RopeScaling.AttentionFactor : 1.0;
        for (int p = 0; p < maxPositions; p++)
            for (int i = 0; i < invFreq.Length; i++)
            {
                double angle = p * positionScale * invFreq[i];
                cos[p * invFreq.Length + i] = (float)(Math.Cos(angle) * magnitude);
                sin[p * invFreq.Length + i] = (float)(Math.Sin(angle) * magnitude);
            }

        using var c = tensor(cos, [maxPositions, invFreq.Length]);
        using var s = tensor(sin, [maxPositions, invFreq.Length]);
        _cos = c.to(dtype, device);
        _sin = s.to(dtype, device);
    }

    public int MaxPositions { get; }

    private readonly int _headDim, _rotaryDim;
    private readonly Tensor? _swapHalves;

    /// <summary>cos table <c>[maxPositions, D/2]</c> in the compute dtype.</summary>
    internal Tensor Cos => _cos;

    /// <summary>sin table <c>[maxPositions, D/2]</c> in the compute dtype.</summary>
    internal Tensor Sin => _sin;

    /// <summary>
    /// θᵢ = base^(−2i/D); for llama3 scaling, long wavelengths are divided by the factor and the band between is smoothed;
    /// for yarn see <see cref="Yarn"/>; for longrope each θᵢ is divided by its short factor, or by its long factor where the
    /// served context (<paramref name="maxPositions"/>) exceeds the original one. Why by the served context and not, as
    /// HF, by each forward pass's length: a cached key keeps the rotation it was stored with, so switching mid-sequence
    /// would mix two; llama.cpp chooses by its context size the same way.
    /// </summary>
    public static double[] InverseFrequencies(ModelConfig config, int maxPositions = int.MaxValue)
    {
        int half = config.RotaryDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
            inv[i] = 1.0 / Math.Pow(config.RopeTheta, 2.0 * i / config.RotaryDim);
        var s = config.RopeScaling;
        if (s.Kind == RopeScalingKind.LongRope)
        {
            var factors = maxPositions > s.OriginalMaxPositionEmbeddings ? s.LongFactor! : s.ShortFactor!;
            for (int i = 0; i < half; i++)
                inv[i] /= factors[i];
            return inv;
        }

        if (s.Kind == RopeScalingKind.Yarn)
            return Yarn(inv, config);
        if (s.Kind != RopeScalingKind.Llama3)
            return inv;
        double lowFreqWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
        double highFreqWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
        for (int i = 0; i < half; i++)
        {
            double wavelen = 2 * Math.PI / inv[i];
            if (wavelen > lowFreqWavelen)
            {
                inv[i] /= s.Factor;
            }
            else if (wavelen >= highFreqWavelen)
            {
                double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                inv[i] = (1 - smooth) * inv[i] / s.Factor + smooth * inv[i];
            }
        }

        return inv;
    }

    /// <summary>
    /// YaRN's frequencies (Peng et al.; HF's <c>_compute_yarn_parameters</c>): with the dimension that turns r times over
    /// the original context <c>c(r) = D·ln(L₀ / (2π·r)) / (2·ln base)</c>, the pairs below <c>low = ⌊c(β_fast)⌋</c> keep
    /// θᵢ (extrapolated), those past <c>high = ⌈c(β_slow)⌉</c> take θᵢ / factor (interpolated), and a linear ramp
    /// <c>γᵢ = clamp((i − low) / (high − low), 0, 1)</c> mixes the two between: <c>θᵢ' = θᵢ/factor · γᵢ + θᵢ · (1 − γᵢ)</c>.
    /// </summary>
    private static double[] Yarn(double[] inv, ModelConfig config)
    {
        var s = config.RopeScaling;
        int d = config.RotaryDim;
        double Dimension(double rotations) => d * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(config.RopeTheta));
        double low = Dimension(s.BetaFast), high = Dimension(s.BetaSlow);
        if (s.Truncate)
            (low, high) = (Math.Floor(low), Math.Ceiling(high));
        (low, high) = (Math.Max(low, 0), Math.Min(high, d - 1));
        if (low == high)
            high += 0.001;                                  // HF's guard against a zero-width ramp
        var scaled = new double[inv.Length];
        for (int i = 0; i < inv.Length; i++)
        {
            // float32, as HF builds the ramp (torch.arange in float32)
            double ramp = Math.Clamp((float)((i - low) / (high - low)), 0, 1);
            scaled[i] = inv[i] / s.Factor * ramp + inv[i] * (1 - ramp);
        }

        return scaled;
    }

    /// <summary>
    /// The step's rotation tables for x <c>[T, H, D]</c> whose first <paramref name="rotatedHeads"/> heads (q and k) are
    /// rotated and the rest (v) kept, computed once per step for every layer:
    /// <code>
    /// Cos[t, h] = (cos, cos, 1…)[position t]  Sin[t, h] = (−sin, sin, 0…)[position t]  for h &lt; rotatedHeads (1 and 0 past R)
    /// Cos[t, h] = 1                           Sin[t, h] = 0                            for the others
    /// </code>
    /// </summary>
    public (Tensor Cos, Tensor Sin) HeadTables(Tensor positions, int rotatedHeads, int heads)
    {
        using var scope = NewDisposeScope();
        var c = _cos.index_select(0, positions);
        var s = _sin.index_select(0, positions);
        long t = c.size(0), d = _headDim, rest = _headDim - _rotaryDim;
        var cos = (rest == 0 ? cat([c, c], 1) : cat([c, c, ones([t, rest], c.dtype, c.device)], 1)).unsqueeze(1).expand(t, rotatedHeads, d);
        var sin = (rest == 0 ? cat([s.neg(), s], 1) : cat([s.neg(), s, zeros([t, rest], c.dtype, c.device)], 1)).unsqueeze(1).expand(t, rotatedHeads, d);
        if (rotatedHeads < heads)
        {
            cos = cat([cos, ones([t, heads - rotatedHeads, d], c.dtype, c.device)], 1);
            sin = cat([sin, zeros([t, heads - rotatedHeads, d], c.dtype, c.device)], 1);
        }

        return (cos.contiguous().MoveToOuterDisposeScope(), sin.contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The step's tables for the libtorch path (<see cref="HeadTables"/> over q, k and v heads), or empty ones when
    /// <paramref name="cpuKernelsRotate"/> and no autograd graph is being recorded: then the CPU kernels rotate in place.
    /// </summary>
    public (Tensor Cos, Tensor Sin) StepTables(Tensor positions, ModelConfig c, bool cpuKernelsRotate) =>
        cpuKernelsRotate && !is_grad_enabled()
            ? (empty(0), empty(0))
            : HeadTables(positions, c.NumHeads + c.NumKvHeads, c.NumHeads + 2 * c.NumKvHeads);

    /// <summary>
    /// x <c>[T, H, D]</c> rotated by the tables of <see cref="HeadTables"/> as a new tensor, in three ops:
    /// <c>x·Cos + rotate(x)·Sin</c> with rotate(x₁, x₂, rest) = (x₂, x₁, rest), so out₁ = x₁·cos − x₂·sin and
    /// out₂ = x₂·cos + x₁·sin, exactly as HF's rotate-half (a negated product added is the product subtracted); the dimensions
    /// past R and the kept heads come back unchanged.
    /// </summary>
    public Tensor Apply(Tensor x, (Tensor Cos, Tensor Sin) tables)
    {
        using var scope = NewDisposeScope();
        var swapped = _swapHalves is null ? x.roll(x.size(2) / 2, 2) : x.index_select(2, _swapHalves);
        var rotated = swapped.TimesInPlace(tables.Sin);
        return x.mul(tables.Cos).PlusInPlace(rotated).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="Apply"/> in place on CPU memory: rotates heads [0, <paramref name="heads"/>) of each row of
    /// <paramref name="x"/> <c>[T, W]</c> (head k at columns k·D..), token t at position <paramref name="positions"/>[t];
    /// given <paramref name="cache"/>, also stores the K and V heads in their cache rows (<see cref="Kernels.CpuElementwiseKernels.RotateInPlace"/>).
    /// </summary>
    public void ApplyInPlace(Tensor x, int heads, IReadOnlyList<int> positions, Kernels.KvCacheWrite? cache = null) =>
        Kernels.CpuElementwiseKernels.RotateInPlace(x, heads, _headDim, _cos, _sin, positions, cache);

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
        _swapHalves?.Dispose();
    }
}
