using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>
/// The architecture fields of a Hugging Face <c>config.json</c> for the Llama family
/// (<c>LlamaForCausalLM</c>, <c>MistralForCausalLM</c>, <c>Qwen2ForCausalLM</c>, <c>Qwen3ForCausalLM</c>, <c>GraniteForCausalLM</c>,
/// <c>Phi3ForCausalLM</c>, <c>MixtralForCausalLM</c>, <c>GraniteMoeForCausalLM</c>, <c>Qwen2MoeForCausalLM</c>, <c>Qwen3MoeForCausalLM</c>, <c>Gemma2ForCausalLM</c>, <c>Gemma3ForCausalLM</c>, <c>GptOssForCausalLM</c>, <c>Olmo2ForCausalLM</c>, <c>Olmo3ForCausalLM</c>, and <c>Gemma3ForConditionalGeneration</c>'s language model).
/// </summary>
public sealed record ModelConfig
{
    public static readonly IReadOnlyList<string> SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
        "GraniteForCausalLM", "GraniteMoeForCausalLM", "Phi3ForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "Gemma2ForCausalLM", "Gemma3ForCausalLM",
        "GptOssForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM", .. MultimodalConfig.Architectures,
        "LlamaModel", "MistralModel", "Qwen2Model", "Qwen3Model", "Gemma3TextModel"];

    /// <summary>
    /// Whether config.json names the bare transformer (<c>MistralModel</c>, <c>Qwen3Model</c>: no language-model head), as
    /// embedding models such as e5-mistral do.
    /// </summary>
    public bool DeclaresBareModel => Architecture.EndsWith("Model", StringComparison.Ordinal);

    /// <summary>
    /// Whether config.json names a multimodal model whose language model is served (<see cref="MultimodalConfig"/>): its
    /// tensors sit under a <c>language_model</c> prefix beside a vision tower, which text requests never use.
    /// </summary>
    public bool IsLanguageModelOfMultimodal => MultimodalConfig.Architectures.Contains(Architecture);

    public required string Architecture { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }

    /// <summary>
    /// The leading dimensions of each head RoPE rotates (rotate-half within them), the rest left as they are: HeadDim, or
    /// <c>int(head_dim · partial_rotary_factor)</c> (Phi-4-mini's 96 of 128). Even.
    /// </summary>
    public int RotaryDim { get; init; }
    public required int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling RopeScaling { get; init; } = RopeScaling.None;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Biases on q/k/v projections (Qwen2, or <c>attention_bias</c> true for Llama).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>A bias on o_proj: <c>attention_bias</c> true, outside Qwen2 (whose o_proj never has one).</summary>
    public bool AttentionOutputBias { get; init; }

    /// <summary>
    /// gpt-oss: a learned logit per query head (<c>self_attn.sinks</c>, <c>[Hq]</c>) joins each softmax over the scores as one more
    /// column, dropped after it: <c>p_j = exp(s_j) / (Σ_k exp(s_k) + exp(sink))</c>, so a head may attend to nothing.
    /// </summary>
    public bool AttentionSinks { get; init; }

    /// <summary>gpt-oss: the clamp L of <see cref="MlpActivation.ClampedSwiglu"/> (<c>swiglu_limit</c>); null elsewhere.</summary>
    public double? SwigluLimit { get; init; }

    /// <summary>The window of the sliding layers: a token at position p attends to p − W + 1 … p there; null: no layer slides.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>
    /// config.json's <c>use_bidirectional_attention</c> (EmbeddingGemma): every prompt position attends to every other
    /// within its layer's window on both sides (|q − k| &lt; <see cref="SlidingWindow"/>), so a prompt is computed whole and
    /// its KV depends on what follows it; such a model serves embeddings only. A Gemma 3 window is then
    /// <c>sliding_window / 2 + 1</c>, as transformers reads it.
    /// </summary>
    public bool BidirectionalAttention { get; init; }

    /// <summary>
    /// The layers that attend to the whole context although <see cref="SlidingWindow"/> is set (Gemma 3's every sixth,
    /// Qwen2's below <c>max_window_layers</c>); empty: every layer slides. Ascending.
    /// </summary>
    public IReadOnlyList<int> FullAttentionLayers { get; init; } = [];

    /// <summary>Layer <paramref name="layer"/>'s window, or null where it attends to the whole context.</summary>
    public int? WindowOf(int layer) => SlidingWindow is int w && !FullAttentionLayers.Contains(layer) ? w : null;

    /// <summary>Whether some layers slide and others do not, so that a step needs the attended rows of both kinds.</summary>
    public bool MixesWindows => SlidingWindow is not null && FullAttentionLayers.Count > 0;

    /// <summary>
    /// Gemma 3: the RoPE base of the sliding layers (<c>rope_local_base_freq</c>), unscaled; the full layers take
    /// <see cref="RopeTheta"/> and <see cref="RopeScaling"/>. Null: every layer takes those.
    /// </summary>
    public double? LocalRopeTheta { get; init; }

    /// <summary>The gated MLP's activation (<c>hidden_act</c>, Gemma's <c>hidden_activation</c>).</summary>
    public MlpActivation Activation { get; init; } = MlpActivation.Silu;

    /// <summary>
    /// Gemma 2: each attention score s (after its scale) becomes <c>cap · tanh(s / cap)</c> before the mask and softmax
    /// (<c>attn_logit_softcapping</c>); null: none.
    /// </summary>
    public double? AttentionSoftcap { get; init; }

    /// <summary>Gemma 2: each logit z becomes <c>cap · tanh(z / cap)</c> (<c>final_logit_softcapping</c>); null: none.</summary>
    public double? FinalLogitSoftcap { get; init; }

    /// <summary>The sparse MLP's experts and routing (Mixtral, Qwen3-MoE); null for a dense model.</summary>
    public MixtureOfExperts? Experts { get; init; }

    /// <summary>
    /// Phi-3: the checkpoint stores q/k/v as one <c>self_attn.qkv_proj</c> and gate/up as one <c>mlp.gate_up_proj</c> (in the
    /// engine's own fused order), and its adapters adapt those.
    /// </summary>
    public bool FusedCheckpointProjections { get; init; }

    /// <summary>Gemma: every RMSNorm scales by 1 + w, its checkpoint holding w (Llama's hold the scale itself).</summary>
    public bool NormScalesByOnePlusWeight { get; init; }

    /// <summary>
    /// Gemma 2/3: the attention output and the MLP output are RMSNormed before their residual adds
    /// (<c>post_attention_layernorm</c>, <c>post_feedforward_layernorm</c>); the MLP's input norm is <c>pre_feedforward_layernorm</c>.
    /// </summary>
    public bool SandwichNorms { get; init; }

    /// <summary>
    /// OLMo 2/3: no norm before attention or the MLP; their outputs are RMSNormed before the residual adds
    /// (<c>post_attention_layernorm</c>, <c>post_feedforward_layernorm</c>), and q/k are normed across all heads
    /// (<see cref="QkNormAcrossHeads"/>).
    /// </summary>
    public bool PostNormsOnly { get; init; }

    /// <summary>OLMo 2/3: the q and k norms span the whole projection (weights <c>[Hq·D]</c>, <c>[Hkv·D]</c>) rather than each head.</summary>
    public bool QkNormAcrossHeads { get; init; }

    /// <summary>
    /// An RMSNorm over each query and key head (weights <c>[HeadDim]</c>, <c>q_norm</c>/<c>k_norm</c>) after the q/k
    /// projections and before RoPE (Qwen3).
    /// </summary>
    public bool QkNorm { get; init; }

    /// <summary>Granite: the token embeddings are multiplied by this (1 elsewhere).</summary>
    public double EmbeddingMultiplier { get; init; } = 1;

    /// <summary>Granite: the attention scores' scale, in place of 1/√HeadDim; null elsewhere.</summary>
    public double? AttentionMultiplier { get; init; }

    /// <summary>Granite: each attention and MLP output (adapters included) is multiplied by this before its residual add (1 elsewhere).</summary>
    public double ResidualMultiplier { get; init; } = 1;

    /// <summary>Granite: the logits are divided by this (1 elsewhere).</summary>
    public double LogitsScaling { get; init; } = 1;

    /// <summary>Whether any Granite multiplier departs from the Llama forward pass.</summary>
    public bool HasMultipliers => EmbeddingMultiplier != 1 || AttentionMultiplier is not null || ResidualMultiplier != 1 || LogitsScaling != 1;
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public string? TorchDtype { get; init; }

    public int QueryGroupSize => NumHeads / NumKvHeads;

    /// <summary>config.json at <paramref name="path"/>, with <paramref name="overrides"/> (<see cref="ConfigOverrides"/>) laid over it.</summary>
    public static ModelConfig Load(string path, JsonObject? overrides = null)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException ex)
        {
            throw new ModelConfigException($"{path}: not valid JSON: {ex.Message}");
        }

        if (root is not JsonObject o)
            throw new ModelConfigException($"{path}: expected a JSON object");
        return overrides is null ? Parse(o, path) : Parse(ConfigOverrides.Apply(o, overrides), path + " with --hf-overrides");
    }

    public static ModelConfig Parse(JsonObject o, string source)
    {
        string architecture = (o["architectures"] as JsonArray)?.FirstOrDefault()?.GetValue<string>()
            ?? throw new ModelConfigException($"{source}: field 'architectures' is missing");
        if (!SupportedArchitectures.Contains(architecture))
            throw new ModelConfigException($"{source}: architecture '{architecture}' is not supported (supported: {string.Join(", ", SupportedArchitectures)})");

        // The language model's architecture decides its parts; a multimodal checkpoint keeps its own name.
        string family = architecture;
        if (MultimodalConfig.TextModel(o, architecture, source) is { } text)
            (o, family) = text;
        bool gemma = family.StartsWith("Gemma", StringComparison.Ordinal), gemma3 = family.StartsWith("Gemma3", StringComparison.Ordinal);
        if (gemma3)
            o = Gemma3TextConfig.Resolve(o, architecture, source);
        int hidden = RequiredInt(o, "hidden_size", source);
        int heads = RequiredInt(o, "num_attention_heads", source);
        int kvHeads = OptionalInt(o, "num_key_value_heads") ?? heads;
        int headDim = OptionalInt(o, "head_dim") ?? (hidden % heads == 0 ? hidden / heads
            : throw new ModelConfigException($"{source}: hidden_size {hidden} is not divisible by num_attention_heads {heads} and head_dim is absent"));
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new ModelConfigException($"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        if (headDim % 2 != 0)
            throw new ModelConfigException($"{source}: head_dim {headDim} must be even for rotary embeddings");

        bool isQwen2 = family.StartsWith("Qwen2", StringComparison.Ordinal), isQwen3 = family.StartsWith("Qwen3", StringComparison.Ordinal);
        bool gptOss = family == "GptOssForCausalLM", olmo = family is "Olmo2ForCausalLM" or "Olmo3ForCausalLM";
        double? swigluLimit = gptOss ? OptionalDouble(o, "swiglu_limit") ?? 7.0 : null;
        if (swigluLimit is double limit && !(limit > 0 && double.IsFinite(limit)))
            throw new ModelConfigException($"{source}: field 'swiglu_limit' must be a positive number, got {limit}");
        int layers = RequiredInt(o, "num_hidden_layers", source);
        var (window, fullLayers) = LayerWindows.Parse(o, family, layers, source);
        bool bidirectional = OptionalBool(o, "use_bidirectional_attention") ?? false;
        if (bidirectional && window is int w)
            window = gemma3 ? w / 2 + 1 : throw new ModelConfigException($"{source}: use_bidirectional_attention with a sliding window is read for Gemma 3 only");
        foreach (string multiplier in new[] { "embedding_multiplier", "attention_multiplier", "residual_multiplier", "logits_scaling" })
            if (OptionalDouble(o, multiplier) is double m && !(m > 0 && double.IsFinite(m)))
                throw new ModelConfigException($"{source}: field '{multiplier}' must be a positive number, got {m}");
        return new ModelConfig
        {
            Architecture = architecture,
            HiddenSize = hidden,
            IntermediateSize = RequiredInt(o, "intermediate_size", source),
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = RequiredInt(o, "vocab_size", source),
            RmsNormEps = OptionalDouble(o, "rms_norm_eps") ?? 1e-6,
            RopeTheta = OptionalDouble(o, "rope_theta") ?? 10000.0,
            RotaryDim = RotaryDimOf(o, headDim, source),
            RopeScaling = ParseRopeScaling(o, source, RotaryDimOf(o, headDim, source)),
            MaxPositionEmbeddings = OptionalInt(o, "max_position_embeddings") ?? 2048,
            TieWordEmbeddings = OptionalBool(o, "tie_word_embeddings") ?? false,
            AttentionBias = isQwen2 || (OptionalBool(o, "attention_bias") ?? false),
            AttentionOutputBias = !isQwen2 && (OptionalBool(o, "attention_bias") ?? false),
            AttentionSinks = gptOss,
            SwigluLimit = swigluLimit,
            SlidingWindow = window,
            BidirectionalAttention = bidirectional,
            FullAttentionLayers = fullLayers,
            // OLMo 3 scales RoPE (YaRN) in its whole-context layers only, as vLLM and SGLang read it.
            LocalRopeTheta = gemma3 ? OptionalDouble(o, "rope_local_base_freq") ?? 10000.0 : olmo && window is not null ? OptionalDouble(o, "rope_theta") ?? 10000.0 : null,
            Activation = gptOss ? MlpActivation.ClampedSwiglu : ActivationOf(o, source),
            NormScalesByOnePlusWeight = gemma,
            SandwichNorms = gemma,
            PostNormsOnly = olmo,
            QkNormAcrossHeads = olmo,
            FusedCheckpointProjections = family == "Phi3ForCausalLM",
            Experts = MixtureOfExperts.Parse(o, family, layers, RequiredInt(o, "intermediate_size", source), source),
            QkNorm = isQwen3 || gemma3 || olmo,
            AttentionSoftcap = gemma ? Softcap(o, "attn_logit_softcapping", source) : null,
            FinalLogitSoftcap = gemma ? Softcap(o, "final_logit_softcapping", source) : null,
            // Gemma scales its embeddings by √hidden (HF rounds the factor to the compute dtype, as a bf16 tensor's scaling does here).
            EmbeddingMultiplier = OptionalDouble(o, "embedding_multiplier") ?? (gemma ? Math.Sqrt(hidden) : 1),
            AttentionMultiplier = OptionalDouble(o, "attention_multiplier")
                ?? (gemma ? 1 / Math.Sqrt(OptionalDouble(o, "query_pre_attn_scalar") ?? headDim) : null),
            ResidualMultiplier = OptionalDouble(o, "residual_multiplier") ?? 1,
            LogitsScaling = OptionalDouble(o, "logits_scaling") ?? 1,
            BosTokenId = OptionalInt(o, "bos_token_id"),
            EosTokenIds = IntOrList(o["eos_token_id"]),
            TorchDtype = o["torch_dtype"]?.GetValue<string>() ?? o["dtype"]?.GetValue<string>(),
        };
    }

    /// <summary>A soft-capping setting: null or 0 is none, else a positive number.</summary>
    private static double? Softcap(JsonObject o, string name, string source) => OptionalDouble(o, name) switch
    {
        null or 0 => null,
        double cap when cap > 0 && double.IsFinite(cap) => cap,
        var cap => throw new ModelConfigException($"{source}: field '{name}' must be a positive number, got {cap}"),
    };

    /// <summary>
    /// <c>hidden_activation</c> (Gemma's name) or <c>hidden_act</c>: silu, or GELU's tanh approximation; another activation
    /// is refused rather than served as one of these.
    /// </summary>
    private static MlpActivation ActivationOf(JsonObject o, string source)
    {
        string name = (o["hidden_activation"] ?? o["hidden_act"])?.GetValue<string>() ?? "silu";
        return name switch
        {
            "silu" or "swish" => MlpActivation.Silu,
            "gelu_pytorch_tanh" or "gelu_new" => MlpActivation.GeluTanh,
            _ => throw new ModelConfigException($"{source}: activation '{name}' is not supported (supported: silu, gelu_pytorch_tanh)"),
        };
    }

    /// <summary>HF's <c>int(head_dim · partial_rotary_factor)</c>; refused unless an even number in [2, head_dim].</summary>
    private static int RotaryDimOf(JsonObject o, int headDim, string source)
    {
        double factor = OptionalDouble(o, "partial_rotary_factor") ?? 1;
        int dim = (int)(headDim * factor);
        return factor > 0 && factor <= 1 && dim >= 2 && dim % 2 == 0 ? dim
            : throw new ModelConfigException($"{source}: partial_rotary_factor {factor} of head_dim {headDim} gives {dim} rotated dimensions; an even number from 2 to head_dim is needed");
    }

    /// <param name="config">config.json.</param>
    /// <param name="source">Its path, for messages.</param>
    /// <param name="headDim">The dimensions RoPE rotates (<see cref="RotaryDim"/>), which its per-frequency factors cover.</param>
    private static RopeScaling ParseRopeScaling(JsonObject config, string source, int headDim)
    {
        int maxPositions = OptionalInt(config, "max_position_embeddings") ?? 2048;
        if (config["rope_scaling"] is not JsonObject o)
            return RopeScaling.None;
        string? type = (o["rope_type"] ?? o["type"])?.GetValue<string>();
        double factor = OptionalDouble(o, "factor") ?? 1.0;
        return type switch
        {
            null or "default" => RopeScaling.None,
            "linear" => new RopeScaling(RopeScalingKind.Linear, factor),
            "llama3" => new RopeScaling(RopeScalingKind.Llama3, factor,
                OptionalDouble(o, "low_freq_factor") ?? 1.0,
                OptionalDouble(o, "high_freq_factor") ?? 4.0,
                OptionalInt(o, "original_max_position_embeddings") ?? 8192),
            "yarn" => Yarn(o, factor, maxPositions, source),
            "longrope" or "su" => LongRope(o, OptionalInt(o, "original_max_position_embeddings") ?? OptionalInt(config, "original_max_position_embeddings")
                ?? throw new ModelConfigException($"{source}: rope_scaling longrope needs original_max_position_embeddings"), maxPositions, headDim, source),
            _ => throw new ModelConfigException($"{source}: rope_scaling type '{type}' is not supported (supported: linear, llama3, yarn, longrope)"),
        };
    }

    /// <summary>
    /// YaRN as vLLM reads it: <c>factor</c> as given, the ramp over <c>original_max_position_embeddings</c> (else the
    /// config's <c>max_position_embeddings</c>); the attention factor HF's way — <c>attention_factor</c> if given, else
    /// DeepSeek's <c>mscale</c>/<c>mscale_all_dim</c> ratio, else 0.1·ln(factor) + 1.
    /// </summary>
    private static RopeScaling Yarn(JsonObject o, double factor, int maxPositions, string source)
    {
        if (factor < 1)
            throw new ModelConfigException($"{source}: rope_scaling factor must be at least 1 for yarn, got {factor}");
        static double Mscale(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;
        double? mscale = OptionalDouble(o, "mscale"), mscaleAllDim = OptionalDouble(o, "mscale_all_dim");
        double attention = OptionalDouble(o, "attention_factor")
            ?? (mscale is > 0 && mscaleAllDim is > 0 ? Mscale(factor, mscale.Value) / Mscale(factor, mscaleAllDim.Value) : Mscale(factor, 1));
        return new RopeScaling(RopeScalingKind.Yarn, factor,
            OriginalMaxPositionEmbeddings: OptionalInt(o, "original_max_position_embeddings") ?? maxPositions,
            BetaFast: OptionalDouble(o, "beta_fast") ?? 32, BetaSlow: OptionalDouble(o, "beta_slow") ?? 1,
            AttentionFactor: attention, Truncate: OptionalBool(o, "truncate") ?? true);
    }

    /// <summary>
    /// Phi-3's longrope as HF reads it: a short and a long factor per frequency (head_dim / 2 of each), the magnitude
    /// <c>attention_factor</c> if given, else √(1 + ln s / ln L₀) with s = max_position_embeddings / L₀ (1 where s ≤ 1).
    /// </summary>
    private static RopeScaling LongRope(JsonObject o, int original, int maxPositions, int headDim, string source)
    {
        IReadOnlyList<double> Factors(string name)
        {
            var values = (o[name] as JsonArray)?.Select(v => v is JsonValue x && x.TryGetValue(out double d) && d > 0 && double.IsFinite(d) ? d
                : throw new ModelConfigException($"{source}: rope_scaling.{name} must list positive numbers")).ToArray();
            return values is { Length: var n } && n == headDim / 2 ? values
                : throw new ModelConfigException($"{source}: rope_scaling.{name} must list {headDim / 2} factors (half the rotated dimensions), got {values?.Length ?? 0}");
        }

        if (original <= 0)
            throw new ModelConfigException($"{source}: original_max_position_embeddings must be positive, got {original}");
        double scale = (double)maxPositions / original;
        double attention = OptionalDouble(o, "attention_factor") ?? (scale <= 1 ? 1 : Math.Sqrt(1 + Math.Log(scale) / Math.Log(original)));
        return new RopeScaling(RopeScalingKind.LongRope, scale, OriginalMaxPositionEmbeddings: original, AttentionFactor: attention,
            ShortFactor: Factors("short_factor"), LongFactor: Factors("long_factor"));
    }

    public static IReadOnlyList<int> IntOrList(JsonNode? node) => node switch
    {
        null => [],
        JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
        _ => [node.GetValue<int>()],
    };

    private static int RequiredInt(JsonObject o, string name, string source)
    {
        int? v = OptionalInt(o, name);
        if (v is null)
            throw new ModelConfigException($"{source}: required field '{name}' is missing");
        if (v <= 0)
            throw new ModelConfigException($"{source}: field '{name}' must be positive, got {v}");
        return v.Value;
    }

    internal static int? OptionalInt(JsonObject o, string name)
    {
        try
        {
            return o[name] is JsonValue v ? v.GetValue<int>() : null;
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        {
            throw new ModelConfigException($"field '{name}' must be an integer");
        }
    }

    internal static double? OptionalDouble(JsonObject o, string name) => o[name] is not JsonValue v ? null
        : v.TryGetValue(out double d) ? d
        : v.TryGetValue(out long l) ? l
        : v.TryGetValue(out int i) ? i
        : throw new ModelConfigException($"field '{name}' must be a number");

    internal static bool? OptionalBool(JsonObject o, string name) => o[name] is JsonValue v ? v.GetValue<bool>() : null;
}
