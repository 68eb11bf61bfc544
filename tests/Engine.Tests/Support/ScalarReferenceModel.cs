using System.Runtime.InteropServices;
using Serving.Contracts.Configuration;
using Serving.Contracts.Safetensors;

namespace Serving.Engine.Tests.Support;

/// <summary>
/// An independent Llama forward pass in plain C# arrays (double accumulation, no TorchSharp, no KV cache): the
/// whole sequence is recomputed for every call. Reads F32 safetensors only. The engine is checked against it.
/// <para>
/// With <c>int8</c>, every projection and the lm_head (a tied embedding with it) is the int8 base as <c>--quantization int8</c>
/// defines it, written out here from the definition: each weight row and each input vector (as float32) quantized
/// symmetrically, <c>scale = max|v| / 127</c>, <c>q = round(v / scale)</c> to nearest even, and
/// <c>y[n] = xscale · wscale[n] · Σ_k xq[k]·wq[n, k]</c>. Adapters add <c>Σ weight · scale · B·(A·x)</c> on the unquantized x.
/// </para>
/// </summary>
internal sealed class ScalarReferenceModel
{
    private readonly ModelConfig _c;
    private readonly Dictionary<string, (float[] Data, long[] Shape)> _w = [];
    private readonly bool _int8;
    private readonly int _servedContext;
    private readonly IReadOnlyList<(Contracts.Lora.LoraAdapterWeights Adapter, float Weight)> _adapters;
    private readonly Dictionary<string, (sbyte[] Values, float[] Scales)> _quantized = [];

    /// <param name="modelDir">The model folder (F32 safetensors).</param>
    /// <param name="int8">The int8 base (see the class summary).</param>
    /// <param name="adapters">Adapters added to every projection they adapt, with their weights.</param>
    /// <param name="servedContext">The context the engine serves, which picks longrope's short or long factors.</param>
    public ScalarReferenceModel(string modelDir, bool int8 = false, IReadOnlyList<(Contracts.Lora.LoraAdapterWeights Adapter, float Weight)>? adapters = null,
        int servedContext = int.MaxValue)
    {
        _int8 = int8;
        _servedContext = servedContext;
        _adapters = adapters ?? [];
        _c = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var file = SafetensorsFile.Open(Path.Combine(modelDir, "model.safetensors"));
        var bytesOf = new Dictionary<string, (byte[] Bytes, long[] Shape)>();
        foreach (var t in file.Tensors.Values)
        {
            if (t.Dtype is not (SafetensorsDtype.F32 or SafetensorsDtype.U8))
                throw new NotSupportedException("reference model reads F32 (and gpt-oss's MXFP4 bytes) only");
            var bytes = new byte[t.ByteLength];
            file.ReadInto(t, bytes);
            if (t.Dtype == SafetensorsDtype.U8)
                bytesOf[t.Name] = (bytes, t.Shape);
            else                                           // an embedding model's bare transformer names: the causal LM's
                _w[t.Name.StartsWith("model.", StringComparison.Ordinal) || t.Name.StartsWith("lm_head.", StringComparison.Ordinal) ? t.Name : "model." + t.Name] =
                    (MemoryMarshal.Cast<byte, float>(bytes).ToArray(), t.Shape);
        }

        // gpt-oss's MXFP4 experts, as the stacked x·W tensors its bf16 checkpoints hold.
        foreach (var (name, (blocks, shape)) in bytesOf.Where(b => b.Key.EndsWith("_blocks", StringComparison.Ordinal)))
        {
            string stacked = name[..^"_blocks".Length];
            int e = (int)shape[0], outF = (int)shape[1], inF = (int)(shape[2] * 32);
            _w[stacked] = (GptOssReferenceExperts.Dequantized(blocks, bytesOf[stacked + "_scales"].Bytes, e, outF, inF), [e, inF, outF]);
        }

        // Phi-3's stacked projections, split back into the separate ones by rows.
        int d = _c.HeadDim, q = _c.NumHeads * d, kv = _c.NumKvHeads * d;
        for (int layer = 0; layer < _c.NumLayers; layer++)
        {
            string p = $"model.layers.{layer}.";
            Split(p, "self_attn.qkv_proj", ("self_attn.q_proj", q), ("self_attn.k_proj", kv), ("self_attn.v_proj", kv));
            Split(p, "mlp.gate_up_proj", ("mlp.gate_proj", _c.IntermediateSize), ("mlp.up_proj", _c.IntermediateSize));
        }
    }

    /// <summary>Replaces layer <paramref name="layer"/>'s stacked <paramref name="module"/> weight, if it has one, by its parts' rows.</summary>
    private void Split(string layer, string module, params (string Module, int Rows)[] parts)
    {
        if (!_w.Remove(layer + module + ".weight", out var stacked))
            return;
        int cols = (int)stacked.Shape[1], row = 0;
        foreach (var (part, rows) in parts)
        {
            _w[layer + part + ".weight"] = (stacked.Data.AsSpan(row * cols, rows * cols).ToArray(), [rows, cols]);
            row += rows;
        }
    }

    /// <summary>Logits [T][vocab] for every position of <paramref name="tokens"/>.</summary>
    public float[][] Forward(IReadOnlyList<int> tokens)
    {
        bool tied = !_w.ContainsKey("lm_head.weight");
        string head = tied ? "model.embed_tokens.weight" : "lm_head.weight";
        double Logit(double z) => _c.FinalLogitSoftcap is double cap ? cap * Math.Tanh(z / _c.LogitsScaling / cap) : z / _c.LogitsScaling;
        return [.. Hidden(tokens).Select(row => Base(head, row, _c.VocabSize, _c.HiddenSize, null).Select(z => (float)Logit(z)).ToArray())];
    }

    /// <summary>The final hidden states [T][hidden] (after the final RMSNorm: the lm_head's input) at every position of <paramref name="tokens"/>.</summary>
    public double[][] Hidden(IReadOnlyList<int> tokens)
    {
        int t = tokens.Count, h = _c.HiddenSize, d = _c.HeadDim, hq = _c.NumHeads, hkv = _c.NumKvHeads, g = hq / hkv;
        var x = new double[t][];
        bool tied = !_w.ContainsKey("lm_head.weight");
        var embed = _int8 && tied ? Dequantized("model.embed_tokens.weight", _c.VocabSize, h) : W("model.embed_tokens.weight");
        for (int i = 0; i < t; i++)
            x[i] = Enumerable.Range(0, h).Select(j => embed[tokens[i] * h + j] * _c.EmbeddingMultiplier).ToArray();

        for (int layer = 0; layer < _c.NumLayers; layer++)
        {
            string p = $"model.layers.{layer}.";
            var q = new double[t][];
            var k = new double[t][];
            var v = new double[t][];
            for (int i = 0; i < t; i++)
            {
                // OLMo 2/3 norm no layer's input: attention reads the residual stream itself.
                var n = _w.ContainsKey(p + "input_layernorm.weight") ? RmsNorm(x[i], W(p + "input_layernorm.weight")) : x[i];
                q[i] = Rope(HeadNorm(Project(layer, "self_attn.q_proj", n, hq * d, h), p + "self_attn.q_norm.weight"), i, hq, layer);
                k[i] = Rope(HeadNorm(Project(layer, "self_attn.k_proj", n, hkv * d, h), p + "self_attn.k_norm.weight"), i, hkv, layer);
                v[i] = Project(layer, "self_attn.v_proj", n, hkv * d, h);
            }

            for (int i = 0; i < t; i++)
            {
                var attn = new double[hq * d];
                for (int head = 0; head < hq; head++)
                {
                    int kvHead = head / g;
                    // A sliding layer's window (Mistral's every layer, Gemma 3's five of six): position i sees i − W + 1 … i.
                    // Bidirectional (EmbeddingGemma): i also sees i + 1 … i + W − 1, up to the last position.
                    int first = _c.WindowOf(layer) is int window ? Math.Max(0, i - window + 1) : 0;
                    int last = !_c.BidirectionalAttention ? i : _c.WindowOf(layer) is int w ? Math.Min(t - 1, i + w - 1) : t - 1;
                    var scores = new double[last + 1];
                    for (int j = 0; j < first; j++)
                        scores[j] = double.NegativeInfinity;
                    for (int j = first; j <= last; j++)
                    {
                        double s = 0;
                        for (int e = 0; e < d; e++)
                            s += q[i][head * d + e] * k[j][kvHead * d + e];
                        scores[j] = s * (_c.AttentionMultiplier ?? 1 / Math.Sqrt(d));
                        if (_c.AttentionSoftcap is double cap)
                            scores[j] = cap * Math.Tanh(scores[j] / cap);           // Gemma 2, before the mask and softmax
                    }

                    // gpt-oss: the head's sink logit one more column of the softmax, dropped after it.
                    double? sink = _w.TryGetValue(p + "self_attn.sinks", out var sinks) ? sinks.Data[head] : null;
                    double max = Math.Max(scores.Max(), sink ?? double.NegativeInfinity);
                    double sum = scores.Sum(s => Math.Exp(s - max)) + (sink is double z ? Math.Exp(z - max) : 0);
                    for (int j = first; j <= last; j++)
                    {
                        double pj = Math.Exp(scores[j] - max) / sum;
                        for (int e = 0; e < d; e++)
                            attn[head * d + e] += pj * v[j][kvHead * d + e];
                    }
                }

                // Gemma 2/3 (post_feedforward_layernorm present): post_attention_layernorm norms the attention output, and
                // pre_feedforward_layernorm the MLP's input, as its modelling code names them.
                bool sandwich = _w.ContainsKey(p + "post_feedforward_layernorm.weight");
                var o = Project(layer, "self_attn.o_proj", attn, h, hq * d);
                if (sandwich)
                    o = RmsNorm(o, W(p + "post_attention_layernorm.weight"));
                for (int j = 0; j < h; j++)
                    x[i][j] += _c.ResidualMultiplier * o[j];
                string mlpNorm = p + (sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight");
                var n2 = _w.ContainsKey(mlpNorm) ? RmsNorm(x[i], W(mlpNorm)) : [.. x[i]];
                var down = _c.Experts is { SoftmaxOverTopK: true } ? GptOssReferenceExperts.Apply(p, n2, _c, W, (e, target, input) => Lora(layer, m => m.Expert == e && m.Target == target, input))
                    : _c.Experts is { } moe && moe.IsSparse(layer) ? Experts(layer, n2, moe)
                    : Mlp(layer, n2, "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", _c.IntermediateSize);
                if (sandwich)
                    down = RmsNorm(down, W(p + "post_feedforward_layernorm.weight"));
                for (int j = 0; j < h; j++)
                    x[i][j] += _c.ResidualMultiplier * down[j];
            }
        }

        return [.. x.Select(row => RmsNorm(row, W("model.norm.weight")))];
    }

    /// <summary>A gated MLP of <paramref name="layer"/> on <paramref name="x"/>: down(act(gate·x) ⊙ up·x), adapters included.</summary>
    private double[] Mlp(int layer, double[] x, string gate, string up, string down, int intermediate)
    {
        int h = _c.HiddenSize;
        var g = Project(layer, gate, x, intermediate, h);
        var u = Project(layer, up, x, intermediate, h);
        return Project(layer, down, [.. g.Select((gv, j) => Activation(gv) * u[j])], h, intermediate);
    }

    /// <summary>
    /// A mixture-of-experts MLP as Mixtral's and Qwen3-MoE's modelling code writes it: the router's softmax, the top K
    /// experts (ties to the lower index), their probabilities renormalised where the model says, each expert's MLP weighted.
    /// </summary>
    private double[] Experts(int layer, double[] x, MixtureOfExperts moe)
    {
        bool mixtral = _c.Architecture == "MixtralForCausalLM";
        string block = mixtral ? "block_sparse_moe." : "mlp.";
        var logits = MatVec(W($"model.layers.{layer}.{block}gate.weight"), x, moe.Experts, _c.HiddenSize, null);
        double max = logits.Max(), sum = logits.Sum(z => Math.Exp(z - max));
        var p = logits.Select(z => Math.Exp(z - max) / sum).ToArray();
        var top = Enumerable.Range(0, moe.Experts).OrderByDescending(e => p[e]).ThenBy(e => e).Take(moe.TopK).ToArray();
        double total = moe.NormalizeTopK ? top.Sum(e => p[e]) : 1;
        var y = new double[_c.HiddenSize];
        foreach (int e in top)
        {
            string expert = $"{block}experts.{e}.";
            var output = mixtral ? Mlp(layer, x, expert + "w1", expert + "w3", expert + "w2", moe.IntermediateSize)
                : Mlp(layer, x, expert + "gate_proj", expert + "up_proj", expert + "down_proj", moe.IntermediateSize);
            for (int j = 0; j < y.Length; j++)
                y[j] += p[e] / total * output[j];
        }

        if (moe.SharedExpertSize > 0)
        {
            // Qwen2-MoE's shared expert, every token, scaled by σ(x · shared_expert_gate).
            var shared = Mlp(layer, x, "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj", "mlp.shared_expert.down_proj", moe.SharedExpertSize);
            double gate = 1 / (1 + Math.Exp(-MatVec(W($"model.layers.{layer}.mlp.shared_expert_gate.weight"), x, 1, _c.HiddenSize, null)[0]));
            for (int j = 0; j < y.Length; j++)
                y[j] += gate * shared[j];
        }

        return y;
    }

    /// <summary>A projection of <paramref name="layer"/>: the base (float or int8) plus every adapter's module on it.</summary>
    private double[] Project(int layer, string module, double[] x, int rows, int cols)
    {
        string p = $"model.layers.{layer}.{module}";
        var y = Base(p + ".weight", x, rows, cols, Bias(p + ".bias"));
        if (Lora(layer, m => ModulePath(m) == module, x) is { } delta)
            for (int o = 0; o < rows; o++)
                y[o] += delta[o];
        return y;
    }

    /// <summary>Σ weight · scale · B·(A·x) over the adapters' modules of <paramref name="layer"/> that <paramref name="adapts"/> selects; null when none does.</summary>
    private double[]? Lora(int layer, Func<Contracts.Lora.LoraModuleWeights, bool> adapts, double[] x)
    {
        double[]? y = null;
        int cols = x.Length;
        foreach (var (adapter, weight) in _adapters)
            foreach (var m in adapter.Modules.Where(m => m.Layer == layer && adapts(m)))
            {
                int rows = m.B.Length / m.Rank;
                y ??= new double[rows];
                var ax = new double[m.Rank];
                for (int r = 0; r < m.Rank; r++)
                    for (int c = 0; c < cols; c++)
                        ax[r] += (double)m.A[r * cols + c] * x[c];
                for (int o = 0; o < rows; o++)
                {
                    double s = 0;
                    for (int r = 0; r < m.Rank; r++)
                        s += (double)m.B[o * m.Rank + r] * ax[r];
                    y[o] += weight * m.Scale * s;
                }
            }

        return y;
    }

    /// <summary>The module a LoRA module adapts, as the checkpoint names it: a layer's projection, or an expert's (Mixtral's w1/w3/w2).</summary>
    private string ModulePath(Contracts.Lora.LoraModuleWeights m) => m.Expert is not { } e ? Contracts.Lora.LoraTargets.ModulePath(m.Target)
        : _c.Architecture == "MixtralForCausalLM" ? $"block_sparse_moe.experts.{e}.{m.Target switch { Contracts.Lora.LoraTarget.Gate => "w1", Contracts.Lora.LoraTarget.Up => "w3", _ => "w2" }}"
        : $"mlp.experts.{e}.{Contracts.Lora.LoraTargets.ModuleName(m.Target)}";

    private double[] Base(string name, double[] x, int rows, int cols, float[]? bias)
    {
        if (!_int8)
            return MatVec(W(name), x, rows, cols, bias);
        var (values, scales) = Quantized(name, rows, cols);
        var input = x.Select(v => (float)v).ToArray();
        float xScale = input.Max(MathF.Abs) / 127;
        var xq = input.Select(v => xScale == 0 ? 0 : (int)Math.Clamp(MathF.Round(v / xScale, MidpointRounding.ToEven), -127, 127)).ToArray();
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            long dot = 0;
            for (int c = 0; c < cols; c++)
                dot += (long)xq[c] * values[r * cols + c];
            y[r] = (double)xScale * scales[r] * dot + (bias?[r] ?? 0);
        }

        return y;
    }

    private (sbyte[] Values, float[] Scales) Quantized(string name, int rows, int cols)
    {
        if (_quantized.TryGetValue(name, out var q))
            return q;
        var w = W(name);
        var values = new sbyte[w.Length];
        var scales = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            float scale = Enumerable.Range(0, cols).Max(c => MathF.Abs(w[r * cols + c])) / 127;
            scales[r] = scale;
            for (int c = 0; c < cols; c++)
                values[r * cols + c] = scale == 0 ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(w[r * cols + c] / scale, MidpointRounding.ToEven), -127, 127);
        }

        return _quantized[name] = (values, scales);
    }

    private float[] Dequantized(string name, int rows, int cols)
    {
        var (values, scales) = Quantized(name, rows, cols);
        return [.. values.Select((v, i) => scales[i / cols] * v)];
    }

    private float[] W(string name) => _w[name].Data;

    private float[]? Bias(string name) => _w.TryGetValue(name, out var b) ? b.Data : null;

    /// <summary>
    /// Qwen3: each head of <paramref name="x"/> RMSNormed with the checkpoint's <paramref name="weight"/>, when it has one;
    /// OLMo 2: all of x at once, its weight as wide as x.
    /// </summary>
    private double[] HeadNorm(double[] x, string weight)
    {
        if (!_w.ContainsKey(weight))
            return x;
        if (W(weight).Length == x.Length)
            return RmsNorm(x, W(weight));
        int d = _c.HeadDim;
        return [.. x.Chunk(d).SelectMany(head => RmsNorm(head, W(weight)))];
    }

    /// <summary>RMSNorm scaled by the checkpoint's weight, or by 1 + weight (Gemma).</summary>
    private double[] RmsNorm(double[] x, float[] weight)
    {
        double ms = x.Sum(z => z * z) / x.Length;
        double inv = 1.0 / Math.Sqrt(ms + _c.RmsNormEps), offset = _c.NormScalesByOnePlusWeight ? 1 : 0;
        return x.Select((z, i) => z * inv * (offset + weight[i])).ToArray();
    }

    /// <summary>SiLU, or GELU's tanh approximation as PyTorch writes it: ½·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))).</summary>
    private double Activation(double g) => _c.Activation == MlpActivation.GeluTanh
        ? 0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g)))
        : g / (1 + Math.Exp(-g));

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

    /// <summary>
    /// HF rotate-half RoPE at position <paramref name="pos"/> for each of <paramref name="heads"/> heads; with YaRN
    /// (<c>rope_scaling.rope_type: yarn</c>) its frequencies and magnitude, written out here from HF's
    /// <c>_compute_yarn_parameters</c>; linear scaling divides the position by its factor. Gemma 3's sliding layers
    /// rotate by their local base, unscaled.
    /// </summary>
    private double[] Rope(double[] x, int pos, int heads, int layer)
    {
        // A partial rotary factor rotates each head's first R dimensions (pairs i, i + R/2) and keeps the rest.
        int headDim = _c.HeadDim, d = _c.RotaryDim, half = d / 2;
        bool local = _c.LocalRopeTheta is not null && _c.WindowOf(layer) is not null;
        double theta = local ? _c.LocalRopeTheta!.Value : _c.RopeTheta;
        var scaling = local ? RopeScaling.None : _c.RopeScaling;
        // Phi-3's longrope: each frequency divided by its short factor, or its long one where the served context is longer than the original.
        var longRope = scaling.Kind == RopeScalingKind.LongRope ? (_servedContext > scaling.OriginalMaxPositionEmbeddings ? scaling.LongFactor : scaling.ShortFactor) : null;
        var yarn = scaling.Kind == RopeScalingKind.Yarn ? scaling : null;
        double position = scaling.Kind == RopeScalingKind.Linear ? pos / scaling.Factor : pos;
        double low = 0, high = 0;
        if (yarn is not null)
        {
            double CorrectionDim(double rotations) => d * Math.Log(yarn.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
            low = CorrectionDim(yarn.BetaFast);
            high = CorrectionDim(yarn.BetaSlow);
            if (yarn.Truncate)                                  // gpt-oss's configs say false
                (low, high) = (Math.Floor(low), Math.Ceiling(high));
            (low, high) = (Math.Max(low, 0), Math.Min(high, d - 1));
        }

        var result = (double[])x.Clone();
        for (int head = 0; head < heads; head++)
            for (int i = 0; i < half; i++)
            {
                double freq = 1.0 / Math.Pow(theta, 2.0 * i / d) / (longRope?[i] ?? 1), magnitude = longRope is null ? 1 : scaling.AttentionFactor;
                if (yarn is not null)
                {
                    double extrapolation = 1 - Math.Clamp((i - low) / (high == low ? 0.001 : high - low), 0, 1);
                    freq = freq / yarn.Factor * (1 - extrapolation) + freq * extrapolation;
                    magnitude = yarn.AttentionFactor;
                }

                double angle = position * freq, c = Math.Cos(angle) * magnitude, s = Math.Sin(angle) * magnitude;
                double x1 = x[head * headDim + i], x2 = x[head * headDim + half + i];
                result[head * headDim + i] = x1 * c - x2 * s;
                result[head * headDim + half + i] = x2 * c + x1 * s;
            }

        return result;
    }
}
