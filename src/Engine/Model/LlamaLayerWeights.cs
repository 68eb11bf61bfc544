using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// One decoder layer's weights in the compute dtype. Projections are stored as HF stores them, [out, in], with
/// q/k/v fused into one [(Hq + 2·Hkv)·D, hidden] matrix and gate/up into one [2·intermediate, hidden] matrix so
/// that a step issues four GEMMs per layer instead of seven. The projections are <see cref="ProjectionWeight"/>s: plain
/// tensors, or AMX-packed ones for bfloat16 on a CPU that has AMX.
/// </summary>
public sealed class LlamaLayerWeights : IDisposable
{
    public Tensor? InputNorm { get; init; }                  // [hidden]; every norm holds its scale (Gemma's 1 + w, folded at load); null: none (OLMo 2)
    public required ProjectionWeight Qkv { get; init; }                // [(Hq + 2·Hkv)·D, hidden]
    public Tensor? QkvBias { get; init; }                    // [(Hq + 2·Hkv)·D] (Qwen2)
    public Tensor? QNorm { get; init; }                      // [D], every query head's RMSNorm weight (Qwen3); [Hq·D] across heads (OLMo 2)
    public Tensor? KNorm { get; init; }                      // [D], every key head's (Qwen3); [Hkv·D] (OLMo 2)
    public required ProjectionWeight O { get; init; }                  // [hidden, Hq·D]
    public Tensor? OBias { get; init; }                      // [hidden] (attention_bias outside Qwen2: gpt-oss)
    public Tensor? Sinks { get; init; }                      // [Hq] float32 whatever the compute dtype: each head's sink logit (gpt-oss)
    public Tensor? PostAttentionNorm { get; init; }          // [hidden], the MLP's input norm (Gemma's pre_feedforward_layernorm); null: none (OLMo 2)
    public Tensor? AttentionOutputNorm { get; init; }        // [hidden], over o before its residual add (Gemma's post_attention_layernorm)
    public Tensor? MlpOutputNorm { get; init; }              // [hidden], over down before its residual add (Gemma's post_feedforward_layernorm)
    public ProjectionWeight? GateUp { get; init; }                     // [2·intermediate, hidden]; null in a mixture-of-experts layer
    public ProjectionWeight? Down { get; init; }                       // [hidden, intermediate]; null in a mixture-of-experts layer
    public ProjectionWeight? Router { get; init; }                     // [experts, hidden], a mixture-of-experts layer's (never quantized)
    public Tensor? RouterBias { get; init; }                           // [experts] (gpt-oss)
    public IReadOnlyList<ExpertWeights>? Experts { get; init; }        // a mixture-of-experts layer's, in the router's order
    public ExpertWeights? SharedExpert { get; init; }                  // Qwen2-MoE: run by every token of the layer
    public ProjectionWeight? SharedExpertGate { get; init; }           // [1, hidden]: σ of it scales the shared expert's output

    public IEnumerable<ProjectionWeight> Projections =>
        new[] { Qkv, O, GateUp, Down, Router, SharedExpertGate }.OfType<ProjectionWeight>()
            .Concat((Experts ?? []).Append(SharedExpert).OfType<ExpertWeights>().SelectMany(e => new[] { e.GateUp, e.Down }));

    /// <summary>The layer's vectors (norms and biases) it has, all in the compute dtype.</summary>
    public IEnumerable<Tensor> Vectors => new[] { InputNorm, QkvBias, QNorm, KNorm, OBias, PostAttentionNorm, AttentionOutputNorm, MlpOutputNorm, RouterBias }
        .Concat((Experts ?? []).SelectMany(e => new[] { e.GateUpBias, e.DownBias })).OfType<Tensor>();

    /// <summary>The bytes the layer holds beside its projections: its vectors, and its sinks.</summary>
    public long VectorBytes => Vectors.Append(Sinks).OfType<Tensor>().Sum(t => t.NumberOfElements * t.ElementSize);

    public void Dispose()
    {
        InputNorm?.Dispose();
        Qkv.Dispose();
        QkvBias?.Dispose();
        QNorm?.Dispose();
        KNorm?.Dispose();
        O.Dispose();
        OBias?.Dispose();
        Sinks?.Dispose();
        RouterBias?.Dispose();
        PostAttentionNorm?.Dispose();
        AttentionOutputNorm?.Dispose();
        MlpOutputNorm?.Dispose();
        GateUp?.Dispose();
        Down?.Dispose();
        Router?.Dispose();
        foreach (var expert in Experts ?? [])
            expert.Dispose();
        SharedExpert?.Dispose();
        SharedExpertGate?.Dispose();
    }
}
