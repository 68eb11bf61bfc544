using Serving.Contracts.Configuration;
using Serving.Engine.Checkpoints;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// gpt-oss's MLP for <see cref="ScalarReferenceModel"/>, written out from its modelling code (<c>GptOssTopKRouter</c>,
/// <c>GptOssExperts</c>) in doubles: router logits <c>x·Rᵀ + b</c>; the top K (ties to the lower index) weighted by the
/// softmax over those K; per expert <c>gu = x·W[e] + b</c> with gate <c>gu[::2]</c> and up <c>gu[1::2]</c>, gate clamped above at L
/// and up to [−L, L], <c>(up + 1)·gate·σ(1.702·gate)</c>, then <c>·D[e] + b</c>.
/// </summary>
internal static class GptOssReferenceExperts
{
    /// <summary>MXFP4 experts (<c>name_blocks</c>, <c>name_scales</c>) as the stacked x·W tensors <c>[E, in, out]</c> a bf16 checkpoint holds.</summary>
    public static float[] Dequantized(byte[] blocks, byte[] scales, int experts, int outF, int inF)
    {
        var weights = new float[(long)experts * outF * inF];
        Mxfp4.Dequantize(blocks, scales, weights);                     // [E, out, in]
        var stacked = new float[weights.Length];
        for (int e = 0; e < experts; e++)
            for (int o = 0; o < outF; o++)
                for (int i = 0; i < inF; i++)
                    stacked[((long)e * inF + i) * outF + o] = weights[((long)e * outF + o) * inF + i];
        return stacked;
    }

    /// <param name="layer">The layer's tensor prefix.</param>
    /// <param name="x">The MLP's input [H].</param>
    /// <param name="c">The model.</param>
    /// <param name="w">The checkpoint's tensors by name (MXFP4 experts already as <see cref="Dequantized"/> gives them).</param>
    /// <param name="lora">An expert's LoRA update of a projection's output for an input (null: not adapted), as the
    /// reference applies any module: (expert, gate/up/down, input) → Σ weight · scale · B·(A·input).</param>
    public static double[] Apply(string layer, double[] x, ModelConfig c, Func<string, float[]> w, Func<int, Contracts.Lora.LoraTarget, double[], double[]?>? lora = null)
    {
        var moe = c.Experts!;
        int h = c.HiddenSize, inter = moe.IntermediateSize;
        double limit = c.SwigluLimit!.Value;
        var router = w(layer + "mlp.router.weight");
        var routerBias = w(layer + "mlp.router.bias");
        var logits = Enumerable.Range(0, moe.Experts).Select(e => routerBias[e] + Enumerable.Range(0, h).Sum(j => (double)router[e * h + j] * x[j])).ToArray();
        var top = Enumerable.Range(0, moe.Experts).OrderByDescending(e => logits[e]).ThenBy(e => e).Take(moe.TopK).ToArray();
        double max = top.Max(e => logits[e]), sum = top.Sum(e => Math.Exp(logits[e] - max));
        var gateUp = w(layer + "mlp.experts.gate_up_proj");
        var gateUpBias = w(layer + "mlp.experts.gate_up_proj_bias");
        var down = w(layer + "mlp.experts.down_proj");
        var downBias = w(layer + "mlp.experts.down_proj_bias");
        var y = new double[h];
        foreach (int e in top)
        {
            var activated = new double[inter];
            // An adapter's gate row i adds to column 2i (gate_up_proj interleaves them), its up row i to column 2i + 1.
            var gateDelta = lora?.Invoke(e, Contracts.Lora.LoraTarget.Gate, x);
            var upDelta = lora?.Invoke(e, Contracts.Lora.LoraTarget.Up, x);
            for (int i = 0; i < inter; i++)
            {
                double Column(int col) => gateUpBias[e * 2 * inter + col] + Enumerable.Range(0, h).Sum(j => (double)gateUp[((long)e * h + j) * 2 * inter + col] * x[j]);
                double gate = Math.Min(Column(2 * i) + (gateDelta?[i] ?? 0), limit), up = Math.Clamp(Column(2 * i + 1) + (upDelta?[i] ?? 0), -limit, limit);
                activated[i] = (up + 1) * gate / (1 + Math.Exp(-1.702 * gate));
            }

            double weight = Math.Exp(logits[e] - max) / sum;
            var downDelta = lora?.Invoke(e, Contracts.Lora.LoraTarget.Down, activated);
            for (int o = 0; o < h; o++)
            {
                double s = downBias[e * h + o] + (downDelta?[o] ?? 0);
                for (int i = 0; i < inter; i++)
                    s += (double)down[((long)e * inter + i) * h + o] * activated[i];
                y[o] += weight * s;
            }
        }

        return y;
    }
}
