using System.Text.Json.Nodes;
using Serving.Contracts.Safetensors;
using Serving.Engine.Checkpoints;
using Serving.Engine.Sampling;

namespace Serving.Authoring.Synthetic;

/// <summary>
/// What a gpt-oss checkpoint (<c>GptOssForCausalLM</c>) holds beside a Llama's, at a test's scale: sliding layers (window 4)
/// alternating with whole-context ones, YaRN without truncation, biased attention projections, a sink logit per head, and a
/// mixture of experts whose router and experts are biased and whose experts are stacked, gate and up interleaved, as bf16/f32
/// tensors or MXFP4 blocks and scales (<see cref="SyntheticModelSpec.Mxfp4Experts"/>).
/// </summary>
internal static class GptOssCheckpoint
{
    public const string Architecture = "GptOssForCausalLM";

    /// <summary>The clamp of its SwiGLU here: low enough (gpt-oss's is 7) that this small model's gate and up values reach it.</summary>
    private const double SwigluLimit = 1.5;

    public static void AddConfigFields(JsonObject config, SyntheticModelSpec spec, int expertWidth)
    {
        int layers = spec.Preset.Layers;
        config["model_type"] = "gpt_oss";
        config["attention_bias"] = true;
        config["sliding_window"] = 4;
        config["layer_types"] = new JsonArray([.. Enumerable.Range(0, layers).Select(i => (JsonNode)(i % 2 == 0 ? "sliding_attention" : "full_attention"))]);
        config["num_local_experts"] = spec.Experts;
        config["num_experts_per_tok"] = spec.ExpertsPerToken;
        config["experts_per_token"] = spec.ExpertsPerToken;
        config["intermediate_size"] = expertWidth;
        config["swiglu_limit"] = SwigluLimit;
        config["rope_theta"] = 150000.0;
        config["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "yarn", ["factor"] = 4.0, ["beta_fast"] = 32.0, ["beta_slow"] = 1.0, ["original_max_position_embeddings"] = 32, ["truncate"] = false,
        };
        if (spec.Mxfp4Experts)
        {
            config["quantization_config"] = new JsonObject
            {
                ["quant_method"] = "mxfp4",
                ["modules_to_not_convert"] = new JsonArray("model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"),
            };
        }
    }

    /// <summary>A layer's attention biases and its <paramref name="heads"/> sink logits (after its q/k/v/o weights).</summary>
    public static IEnumerable<SafetensorsWriter.Entry> AttentionTensors(string layer, int q, int kv, int hidden, int heads, Func<string, long[], double, double, SafetensorsWriter.Entry> normal)
    {
        yield return normal(layer + "self_attn.q_proj.bias", [q], 0, 0.1);
        yield return normal(layer + "self_attn.k_proj.bias", [kv], 0, 0.1);
        yield return normal(layer + "self_attn.v_proj.bias", [kv], 0, 0.1);
        yield return normal(layer + "self_attn.o_proj.bias", [hidden], 0, 0.1);
        yield return normal(layer + "self_attn.sinks", [heads], 0, 1.0);
    }

    /// <summary>
    /// A layer's router (rows of norm about 4, as the other mixtures' here) and bias, and its experts stacked as gpt-oss
    /// stacks them: <c>gate_up_proj [E, H, 2I]</c> (x · W, gate and up interleaved), <c>down_proj [E, I, H]</c>, their biases;
    /// or MXFP4 blocks and scales of the <c>[out, in]</c> weights.
    /// </summary>
    public static IEnumerable<SafetensorsWriter.Entry> MlpTensors(SyntheticModelSpec spec, string layer, int hidden, int intermediate, SafetensorsDtype dt,
        Func<string, long[], double, double, SafetensorsWriter.Entry> normal)
    {
        int e = spec.Experts;
        string p = layer + "mlp.";
        yield return normal(p + "router.weight", [e, hidden], 0, 1.0 / Math.Sqrt(hidden) * 4);
        yield return normal(p + "router.bias", [e], 0, 0.5);
        foreach (var entry in Projection(spec, p + "experts.gate_up_proj", e, 2 * intermediate, hidden, dt))
            yield return entry;
        yield return normal(p + "experts.gate_up_proj_bias", [e, 2 * intermediate], 0, 0.1);
        foreach (var entry in Projection(spec, p + "experts.down_proj", e, hidden, intermediate, dt))
            yield return entry;
        yield return normal(p + "experts.down_proj_bias", [e, hidden], 0, 0.1);
    }

    /// <summary>E stacked projections of <c>[outF, inF]</c> weights ~ N(0, 1/inF): as x · W tensors <c>[E, inF, outF]</c>, or MXFP4.</summary>
    private static IEnumerable<SafetensorsWriter.Entry> Projection(SyntheticModelSpec spec, string name, int experts, int outF, int inF, SafetensorsDtype dt)
    {
        float[] Weights()
        {
            var random = new SeededRandom(spec.Seed ^ SyntheticModelWriter.Fnv1a(name));
            var bytes = TensorBytes.Normal(random, (long)experts * outF * inF, 0, 1.0 / Math.Sqrt(inF), SafetensorsDtype.F32);
            return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();   // [E, out, in]
        }

        if (spec.Mxfp4Experts)
        {
            int groups = inF / Mxfp4.GroupSize;
            yield return new(name + "_blocks", SafetensorsDtype.U8, [experts, outF, groups, Mxfp4.BlockBytes], () => Mxfp4.Quantize(Weights()).Blocks);
            yield return new(name + "_scales", SafetensorsDtype.U8, [experts, outF, groups], () => Mxfp4.Quantize(Weights()).Scales);
            yield break;
        }

        yield return new(name, dt, [experts, inF, outF], () =>
        {
            var w = Weights();
            var transposed = new float[w.Length];
            for (int x = 0; x < experts; x++)
                for (int o = 0; o < outF; o++)
                    for (int i = 0; i < inF; i++)
                        transposed[((long)x * inF + i) * outF + o] = w[((long)x * outF + o) * inF + i];
            return TensorBytes.Encode(transposed, dt);
        });
    }
}
