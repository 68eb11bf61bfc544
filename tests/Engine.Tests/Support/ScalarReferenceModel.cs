using System.Runtime.InteropServices;
using Serving.Contracts.Configuration;
using Serving.Contracts.Safetensors;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// An independent Llama forward pass in plain C# arrays (double accumulation, no TorchSharp, no KV cache): the
/// whole sequence is recomputed for every call. Reads F32 safetensors only. The engine is checked against it.
/// </summary>
internal sealed class ScalarReferenceModel
{
    private readonly ModelConfig _c;
    private readonly Dictionary<string, (float[] Data, long[] Shape)> _w = [];

    public ScalarReferenceModel(string modelDir)
    {
        _c = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var file = SafetensorsFile.Open(Path.Combine(modelDir, "model.safetensors"));
        foreach (var t in file.Tensors.Values)
        {
            if (t.Dtype != SafetensorsDtype.F32)
                throw new NotSupportedException("reference model reads F32 only");
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            _w[t.Name] = (MemoryMarshal.Cast<byte, float>(bytes).ToArray(), t.Shape);
        }
    }

    /// <summary>Logits [T][vocab] for every position of <paramref name="tokens"/>.</summary>
    public float[][] Forward(IReadOnlyList<int> tokens)
    {
        int t = tokens.Count, h = _c.HiddenSize, d = _c.HeadDim, hq = _c.NumHeads, hkv = _c.NumKvHeads, g = hq / hkv;
        var x = new double[t][];
        var embed = W("model.embed_tokens.weight");
        for (int i = 0; i < t; i++)
            x[i] = Enumerable.Range(0, h).Select(j => (double)embed[tokens[i] * h + j]).ToArray();

        for (int layer = 0; layer < _c.NumLayers; layer++)
        {
            string p = $"model.layers.{layer}.";
            var q = new double[t][];
            var k = new double[t][];
            var v = new double[t][];
            for (int i = 0; i < t; i++)
            {
                var n = RmsNorm(x[i], W(p + "input_layernorm.weight"));
                q[i] = Rope(MatVec(W(p + "self_attn.q_proj.weight"), n, hq * d, h, Bias(p + "self_attn.q_proj.bias")), i, hq);
                k[i] = Rope(MatVec(W(p + "self_attn.k_proj.weight"), n, hkv * d, h, Bias(p + "self_attn.k_proj.bias")), i, hkv);
                v[i] = MatVec(W(p + "self_attn.v_proj.weight"), n, hkv * d, h, Bias(p + "self_attn.v_proj.bias"));
            }

            for (int i = 0; i < t; i++)
            {
                var attn = new double[hq * d];
                for (int head = 0; head < hq; head++)
                {
                    int kvHead = head / g;
                    var scores = new double[i + 1];
                    for (int j = 0; j <= i; j++)
                    {
                        double s = 0;
                        for (int e = 0; e < d; e++)
                            s += q[i][head * d + e] * k[j][kvHead * d + e];
                        scores[j] = s / Math.Sqrt(d);
                    }

                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int j = 0; j <= i; j++)
                    {
                        double pj = Math.Exp(scores[j] - max) / sum;
                        for (int e = 0; e < d; e++)
                            attn[head * d + e] += pj * v[j][kvHead * d + e];
                    }
                }

                var o = MatVec(W(p + "self_attn.o_proj.weight"), attn, h, hq * d, null);
                for (int j = 0; j < h; j++)
                    x[i][j] += o[j];
                var n2 = RmsNorm(x[i], W(p + "post_attention_layernorm.weight"));
                var gate = MatVec(W(p + "mlp.gate_proj.weight"), n2, _c.IntermediateSize, h, null);
                var up = MatVec(W(p + "mlp.up_proj.weight"), n2, _c.IntermediateSize, h, null);
                var act = gate.Select((gv, j) => gv / (1 + Math.Exp(-gv)) * up[j]).ToArray();
                var down = MatVec(W(p + "mlp.down_proj.weight"), act, h, _c.IntermediateSize, null);
                for (int j = 0; j < h; j++)
                    x[i][j] += down[j];
            }
        }

        var head2 = _w.ContainsKey("lm_head.weight") ? W("lm_head.weight") : W("model.embed_tokens.weight");
        return x.Select(row => MatVec(head2, RmsNorm(row, W("model.norm.weight")), _c.VocabSize, h, null).Select(z => (float)z).ToArray()).ToArray();
    }

    private float[] W(string name) => _w[name].Data;

    private float[]? Bias(string name) => _w.TryGetValue(name, out var b) ? b.Data : null;

    private double[] RmsNorm(double[] x, float[] weight)
    {
        double ms = x.Sum(z => z * z) / x.Length;
        double inv = 1.0 / Math.Sqrt(ms + _c.RmsNormEps);
        return x.Select((z, i) => z * inv * weight[i]).ToArray();
    }

    private static double[] MatVec(float[] w, double[] x, int rows, int cols, float[]? bias)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = bias?[r] ?? 0;
            for (int c = 0; c < cols; c++)
                s += w[r * cols + c] * x[c];
            y[r] = s;
        }

        return y;
    }

    /// <summary>HF rotate-half RoPE at position <paramref name="pos"/> for each of <paramref name="heads"/> heads.</summary>
    private double[] Rope(double[] x, int pos, int heads)
    {
        int d = _c.HeadDim, half = d / 2;
        var result = (double[])x.Clone();
        for (int head = 0; head < heads; head++)
            for (int i = 0; i < half; i++)
            {
                double freq = 1.0 / Math.Pow(_c.RopeTheta, 2.0 * i / d);
                double angle = pos * freq, c = Math.Cos(angle), s = Math.Sin(angle);
                double x1 = x[head * d + i], x2 = x[head * d + half + i];
                result[head * d + i] = x1 * c - x2 * s;
                result[head * d + half + i] = x2 * c + x1 * s;
            }

        return result;
    }
}
