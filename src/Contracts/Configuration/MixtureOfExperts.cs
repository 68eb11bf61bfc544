using System.Text.Json.Nodes;

namespace Serving.Contracts.Configuration;

/// <summary>
/// A sparse mixture-of-experts MLP (Mixtral, Qwen3-MoE): a router <c>[Experts, hidden]</c> scores each token, the
/// <see cref="TopK"/> experts of highest softmax probability each run their own SwiGLU MLP of
/// <see cref="IntermediateSize"/> on it, and their outputs are summed weighted by those probabilities (renormalised over
/// the chosen ones with <see cref="NormalizeTopK"/>). Layers in <see cref="DenseLayers"/> keep one dense MLP. With a
/// <see cref="SharedExpertSize"/> (Qwen2-MoE) every token also runs a shared expert of that width, its output scaled by
/// <c>σ(x · shared_expert_gate)</c> and added. gpt-oss routes the other way round — the top K of the router's logits (its
/// projection biased), softmax over those K — and its experts' projections carry biases.
/// </summary>
public sealed record MixtureOfExperts(int Experts, int TopK, int IntermediateSize, bool NormalizeTopK, IReadOnlyList<int> DenseLayers, int SharedExpertSize = 0)
{
    /// <summary>Whether layer <paramref name="layer"/>'s MLP is the experts (else a dense MLP of the config's intermediate size).</summary>
    public bool IsSparse(int layer) => !DenseLayers.Contains(layer);

    /// <summary>gpt-oss: the router projection has a bias <c>[Experts]</c>.</summary>
    public bool RouterBias { get; init; }

    /// <summary>gpt-oss: each expert's gate/up and down projections have biases.</summary>
    public bool ExpertBias { get; init; }

    /// <summary>
    /// gpt-oss: the K experts of highest logit, weighted by the softmax of those K logits (equal in exact arithmetic to the
    /// renormalised top K of the full softmax, and what its modelling code computes); else softmax over all, then the top K.
    /// </summary>
    public bool SoftmaxOverTopK { get; init; }

    /// <summary>
    /// gpt-oss: the checkpoint holds each layer's experts stacked, <c>mlp.experts.gate_up_proj [Experts, hidden, 2·IntermediateSize]</c>
    /// (gate and up interleaved column by column) and <c>mlp.experts.down_proj [Experts, IntermediateSize, hidden]</c>, both
    /// x·W, so PEFT adapts them as parameters (<c>target_parameters</c>) rather than as one module per expert.
    /// </summary>
    public bool StackedExperts { get; init; }

    /// <summary>
    /// Granite MoE: each layer's experts held as two parallel-expert tensors, <c>block_sparse_moe.input_linear [Experts,
    /// 2·IntermediateSize, hidden]</c> (expert e's gate rows, then its up rows) and <c>block_sparse_moe.output_linear
    /// [Experts, hidden, IntermediateSize]</c>, both W·x; its router <c>block_sparse_moe.router.layer</c>.
    /// </summary>
    public bool ParallelExperts { get; init; }

    /// <summary>
    /// Mixtral's and Granite MoE's <c>num_local_experts</c> experts of <c>intermediate_size</c>, renormalised; Qwen2/3-MoE's <c>num_experts</c> of
    /// <c>moe_intermediate_size</c>, renormalised with <c>norm_topk_prob</c>, dense in <c>mlp_only_layers</c> and where
    /// (layer + 1) is not a multiple of <c>decoder_sparse_step</c>, as transformers builds them. Null for a dense model.
    /// </summary>
    internal static MixtureOfExperts? Parse(JsonObject o, string architecture, int layers, int intermediateSize, string source)
    {
        bool mixtral = architecture == "MixtralForCausalLM", qwen = architecture is "Qwen3MoeForCausalLM" or "Qwen2MoeForCausalLM";
        bool gptOss = architecture == "GptOssForCausalLM", granite = architecture == "GraniteMoeForCausalLM";
        if (!mixtral && !qwen && !gptOss && !granite)
            return null;
        int experts = ModelConfig.OptionalInt(o, mixtral || gptOss || granite ? "num_local_experts" : "num_experts") ?? (gptOss ? 32 : 8);
        int topK = ModelConfig.OptionalInt(o, "num_experts_per_tok") ?? ModelConfig.OptionalInt(o, "experts_per_token") ?? (gptOss ? 4 : 2);
        if (experts < 1 || topK < 1 || topK > experts)
            throw new ModelConfigException($"{source}: num_experts_per_tok {topK} must be between 1 and the {experts} experts");
        if (mixtral)
            return new MixtureOfExperts(experts, topK, intermediateSize, NormalizeTopK: true, []);
        if (gptOss)
            return new MixtureOfExperts(experts, topK, intermediateSize, NormalizeTopK: true, []) { RouterBias = true, ExpertBias = true, SoftmaxOverTopK = true, StackedExperts = true };
        if (granite)                                      // its gating: softmax over the top K logits, as gpt-oss's
            return new MixtureOfExperts(experts, topK, intermediateSize, NormalizeTopK: true, []) { SoftmaxOverTopK = true, ParallelExperts = true };
        int size = ModelConfig.OptionalInt(o, "moe_intermediate_size") is int s && s > 0 ? s
            : throw new ModelConfigException($"{source}: required field 'moe_intermediate_size' is missing");
        int step = ModelConfig.OptionalInt(o, "decoder_sparse_step") ?? 1;
        var mlpOnly = (o["mlp_only_layers"] as JsonArray)?.Select(v => v!.GetValue<int>()).ToHashSet() ?? [];
        var dense = Enumerable.Range(0, layers).Where(l => mlpOnly.Contains(l) || step <= 0 || (l + 1) % step != 0).ToArray();
        int shared = architecture == "Qwen2MoeForCausalLM"
            ? ModelConfig.OptionalInt(o, "shared_expert_intermediate_size") is int w && w > 0 ? w
                : throw new ModelConfigException($"{source}: required field 'shared_expert_intermediate_size' is missing")
            : 0;
        return new MixtureOfExperts(experts, topK, size, ModelConfig.OptionalBool(o, "norm_topk_prob") ?? false, dense, shared);
    }
}
