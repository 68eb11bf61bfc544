using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Checkpoints;
using Serving.Engine.Quantization;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>All weights of a Llama-family model, loaded from HF tensor names into the compute dtype and device.</summary>
public sealed class LlamaWeights : IDisposable
{
    private LlamaWeights(ProjectionWeight embed, IReadOnlyList<LlamaLayerWeights> layers, Tensor finalNorm, ProjectionWeight lmHead, bool tied, WeightQuantization quantization)
    {
        Quantization = quantization;
        Embed = embed;
        Layers = layers;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        Tied = tied;
    }

    public ProjectionWeight Embed { get; }  // [vocab, hidden]
    public IReadOnlyList<LlamaLayerWeights> Layers { get; }
    public Tensor FinalNorm { get; }        // [hidden]
    public ProjectionWeight LmHead { get; } // [vocab, hidden]; the same object as Embed when tied
    public bool Tied { get; }

    /// <summary>How the projections (and the lm_head) are held.</summary>
    public WeightQuantization Quantization { get; }

    /// <summary>The bytes every projection and the embedding/lm_head would take in <paramref name="dtype"/>: the load log's "before".</summary>
    public long UnquantizedBytes(ScalarType dtype)
    {
        long size = dtype == ScalarType.Float32 ? 4 : 2;
        return TotalBytes - Projections.Sum(p => p.Bytes) + Projections.Sum(p => p.Outputs * p.Inputs * size);
    }

    /// <summary>The projections held as their checkpoint's MXFP4 (gpt-oss's experts on a CPU), and their bytes.</summary>
    public (int Count, long Bytes) Mxfp4Projections => (Projections.Count(p => p.IsMxfp4), Projections.Where(p => p.IsMxfp4).Sum(p => p.Bytes));

    private IEnumerable<ProjectionWeight> Projections => Layers.SelectMany(l => l.Projections).Append(Embed).Concat(Tied ? [] : [LmHead]);

    public long TotalBytes =>
        Embed.Bytes + (Tied ? 0 : LmHead.Bytes) + Layers.Sum(l => l.Projections.Sum(p => p.Bytes))
        + FinalNorm.NumberOfElements * FinalNorm.ElementSize + Layers.Sum(l => l.VectorBytes);

    /// <summary>
    /// Loads every tensor into the loader's dtype and device. With <paramref name="packForAmx"/>, bfloat16 projections on a CPU
    /// with AMX are packed as they load (<see cref="ProjectionWeight"/>); each plain tensor is freed right after its packing,
    /// so the peak stays one tensor above the final size. With <see cref="WeightQuantization.Int8"/> each projection is read
    /// in float32 (the checkpoint's values, not the compute dtype's rounding of them) and quantized before the next is read.
    /// </summary>
    public static LlamaWeights Load(ModelConfig c, TensorLoader loader, CheckpointFiles files, bool packForAmx = true,
        WeightQuantization quantization = WeightQuantization.None)
    {
        bool int8 = quantization == WeightQuantization.Int8;
        ScalarType? source = int8 ? ScalarType.Float32 : null;
        ProjectionWeight Projection(Tensor t) => int8 ? ProjectionWeight.CreateInt8(t, loader.Dtype) : ProjectionWeight.Create(t, packForAmx);
        Tensor Norm(string name, int size) => NormScale(c, loader, name, size);
        int h = c.HiddenSize, d = c.HeadDim, qOut = c.NumHeads * d, kvOut = c.NumKvHeads * d;
        var disposables = new List<IDisposable>();
        try
        {
            // A bare transformer (an embedding model) has no head of its own: the embedding serves as one, so the forward pass is
            // the same; its logits mean nothing and the server serves it for embeddings only.
            bool tied = (c.TieWordEmbeddings || files.SavedAsBareModel || c.DeclaresBareModel) && !files.Contains("lm_head.weight");
            // A tied embedding is also the lm_head GEMM's weight: pack it, and look tokens up in the packed layout.
            // Quantized, a tied embedding is int8 too: one int8 matrix serves the lookups and the lm_head.
            var embed = int8 && tied
                ? Projection(loader.Load("model.embed_tokens.weight", ScalarType.Float32, c.VocabSize, h))
                : ProjectionWeight.Create(loader.Load("model.embed_tokens.weight", c.VocabSize, h), packForAmx && tied);
            disposables.Add(embed);
            var layers = new List<LlamaLayerWeights>(c.NumLayers);
            for (int i = 0; i < c.NumLayers; i++)
            {
                string p = $"model.layers.{i}.";
                bool sparse = c.Experts?.IsSparse(i) == true;
                var layer = new LlamaLayerWeights
                {
                    InputNorm = c.PostNormsOnly ? null : Norm(p + "input_layernorm.weight", h),
                    Qkv = Projection(c.FusedCheckpointProjections
                        ? loader.Load(p + "self_attn.qkv_proj.weight", source ?? loader.Dtype, qOut + 2 * kvOut, h)
                        : loader.LoadConcatenated([
                            (p + "self_attn.q_proj.weight", [qOut, h]),
                            (p + "self_attn.k_proj.weight", [kvOut, h]),
                            (p + "self_attn.v_proj.weight", [kvOut, h])], source)),
                    QkvBias = c.AttentionBias
                        ? loader.LoadConcatenated([
                            (p + "self_attn.q_proj.bias", [qOut]),
                            (p + "self_attn.k_proj.bias", [kvOut]),
                            (p + "self_attn.v_proj.bias", [kvOut])])
                        : null,
                    QNorm = c.QkNorm ? Norm(p + "self_attn.q_norm.weight", c.QkNormAcrossHeads ? qOut : d) : null,
                    KNorm = c.QkNorm ? Norm(p + "self_attn.k_norm.weight", c.QkNormAcrossHeads ? kvOut : d) : null,
                    O = Projection(loader.Load(p + "self_attn.o_proj.weight", source ?? loader.Dtype, h, qOut)),
                    OBias = c.AttentionOutputBias ? loader.Load(p + "self_attn.o_proj.bias", h) : null,
                    Sinks = c.AttentionSinks ? loader.Load(p + "self_attn.sinks", ScalarType.Float32, c.NumHeads) : null,
                    PostAttentionNorm = c.PostNormsOnly ? null : Norm(p + (c.SandwichNorms ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"), h),
                    AttentionOutputNorm = c.SandwichNorms || c.PostNormsOnly ? Norm(p + "post_attention_layernorm.weight", h) : null,
                    MlpOutputNorm = c.SandwichNorms || c.PostNormsOnly ? Norm(p + "post_feedforward_layernorm.weight", h) : null,
                    GateUp = sparse ? null : Projection(c.FusedCheckpointProjections
                        ? loader.Load(p + "mlp.gate_up_proj.weight", source ?? loader.Dtype, 2 * c.IntermediateSize, h)
                        : loader.LoadConcatenated([
                            (p + "mlp.gate_proj.weight", [c.IntermediateSize, h]),
                            (p + "mlp.up_proj.weight", [c.IntermediateSize, h])], source)),
                    Down = sparse ? null : Projection(loader.Load(p + "mlp.down_proj.weight", source ?? loader.Dtype, h, c.IntermediateSize)),
                    // The router stays in the compute dtype even under int8: a quantized score could route a token elsewhere.
                    Router = sparse ? ProjectionWeight.Create(loader.Load(p + ExpertNames(c).Router + ".weight", c.Experts!.Experts, h), packForAmx) : null,
                    RouterBias = sparse && c.Experts!.RouterBias ? loader.Load(p + ExpertNames(c).Router + ".bias", c.Experts.Experts) : null,
                    Experts = !sparse ? null
                        : c.Experts!.ExpertBias ? GptOssExperts.Load(c, loader, p, source, Projection, keepMxfp4: quantization == WeightQuantization.Mxfp4)
                        : LoadExperts(c, loader, p, source, Projection),
                    SharedExpert = sparse && c.Experts!.SharedExpertSize > 0
                        ? LoadExpert(c, loader, p + "mlp.shared_expert.", ("gate_proj.weight", "up_proj.weight", "down_proj.weight"), c.Experts.SharedExpertSize, source, Projection)
                        : null,
                    SharedExpertGate = sparse && c.Experts!.SharedExpertSize > 0
                        ? ProjectionWeight.Create(loader.Load(p + "mlp.shared_expert_gate.weight", 1, h), packForAmx)
                        : null,
                };
                disposables.Add(layer);
                layers.Add(layer);
            }

            var norm = Norm("model.norm.weight", h);
            disposables.Add(norm);
            var lmHead = tied ? embed : Projection(loader.Load("lm_head.weight", source ?? loader.Dtype, c.VocabSize, h));
            return new LlamaWeights(embed, layers, norm, lmHead, tied, quantization);
        }
        catch
        {
            foreach (var item in disposables)
                item.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Where a mixture-of-experts layer keeps its router and expert e's gate, up and down projections: Mixtral's
    /// <c>block_sparse_moe.gate</c> and <c>experts.e.w1/w3/w2</c>, Qwen3-MoE's <c>mlp.gate</c> and <c>mlp.experts.e.gate_proj/up_proj/down_proj</c>,
    /// gpt-oss's <c>mlp.router</c> (its experts stacked: <see cref="GptOssExperts"/>), Granite MoE's <c>block_sparse_moe.router.layer</c>
    /// (its experts parallel: <see cref="MixtureOfExperts.ParallelExperts"/>).
    /// </summary>
    private static (string Router, Func<int, (string Gate, string Up, string Down)> Expert) ExpertNames(ModelConfig c) => c.Architecture switch
    {
        "MixtralForCausalLM" => ("block_sparse_moe.gate", e => ($"block_sparse_moe.experts.{e}.w1.weight", $"block_sparse_moe.experts.{e}.w3.weight", $"block_sparse_moe.experts.{e}.w2.weight")),
        "GptOssForCausalLM" => ("mlp.router", _ => throw new InvalidOperationException("gpt-oss stacks its experts")),
        "GraniteMoeForCausalLM" => ("block_sparse_moe.router.layer", _ => throw new InvalidOperationException("Granite MoE holds its experts as parallel experts")),
        _ => ("mlp.gate", e => ($"mlp.experts.{e}.gate_proj.weight", $"mlp.experts.{e}.up_proj.weight", $"mlp.experts.{e}.down_proj.weight")),
    };

    /// <summary>A mixture-of-experts layer's experts, each loaded (and packed or quantized) before the next is read.</summary>
    private static List<ExpertWeights> LoadExperts(ModelConfig c, TensorLoader loader, string layer, ScalarType? source, Func<Tensor, ProjectionWeight> projection)
    {
        var moe = c.Experts!;
        var names = ExpertNames(c).Expert;
        var experts = new List<ExpertWeights>(moe.Experts);
        try
        {
            for (int e = 0; e < moe.Experts; e++)
                experts.Add(moe.ParallelExperts ? LoadParallelExpert(c, loader, layer, e, source, projection)
                    : LoadExpert(c, loader, layer, names(e), moe.IntermediateSize, source, projection));
            return experts;
        }
        catch
        {
            foreach (var expert in experts)
                expert.Dispose();
            throw;
        }
    }

    /// <summary>Granite MoE's expert <paramref name="e"/>: its slab of <c>input_linear</c> is already gate then up; its down, its slab of <c>output_linear</c>.</summary>
    private static ExpertWeights LoadParallelExpert(ModelConfig c, TensorLoader loader, string prefix, int e, ScalarType? source, Func<Tensor, ProjectionWeight> projection)
    {
        int experts = c.Experts!.Experts, inter = c.Experts.IntermediateSize;
        var gateUp = projection(loader.LoadSlab(prefix + "block_sparse_moe.input_linear.weight", [experts, 2 * inter, c.HiddenSize], e, source));
        try
        {
            return new ExpertWeights { GateUp = gateUp, Down = projection(loader.LoadSlab(prefix + "block_sparse_moe.output_linear.weight", [experts, c.HiddenSize, inter], e, source)) };
        }
        catch
        {
            gateUp.Dispose();
            throw;
        }
    }

    /// <summary>One expert's SwiGLU MLP of width <paramref name="intermediate"/>: its gate and up fused, then its down.</summary>
    private static ExpertWeights LoadExpert(ModelConfig c, TensorLoader loader, string prefix, (string Gate, string Up, string Down) names, int intermediate,
        ScalarType? source, Func<Tensor, ProjectionWeight> projection)
    {
        var gateUp = projection(loader.LoadConcatenated([(prefix + names.Gate, [intermediate, c.HiddenSize]), (prefix + names.Up, [intermediate, c.HiddenSize])], source));
        try
        {
            return new ExpertWeights { GateUp = gateUp, Down = projection(loader.Load(prefix + names.Down, source ?? loader.Dtype, c.HiddenSize, intermediate)) };
        }
        catch
        {
            gateUp.Dispose();
            throw;
        }
    }

    /// <summary>
    /// An RMSNorm's scale in the compute dtype: the checkpoint's weight, or Gemma's 1 + w (added in float32, rounded once).
    /// Why folded: every kernel then takes one norm. The cost: a Gemma norm in bf16 rounds the normalised row before scaling it
    /// (as Llama's does), where HF's scales it in float32 first — at most one bf16 rounding apart; float32 is unchanged.
    /// </summary>
    private static Tensor NormScale(ModelConfig c, TensorLoader loader, string name, int size)
    {
        if (!c.NormScalesByOnePlusWeight)
            return loader.Load(name, size);
        using var w = loader.Load(name, ScalarType.Float32, size);
        using var scale = w.Plus(1);
        return scale.to(loader.Dtype, loader.Device);
    }

    /// <summary>
    /// One adapted projection's base weight rows <c>[out, in]</c> (a view of its fused weight, unpacked rows when packed) and
    /// bias slice, as served: what DoRA's norms are taken over. New tensor handles the caller disposes.
    /// </summary>
    public (Tensor Weight, Tensor? Bias) Projection(ModelConfig c, int layer, LoraTarget target)
    {
        var w = Layers[layer];
        var group = LoraTargets.FusedOutputs.Single(g => g.Contains(target));
        long offset = group.TakeWhile(t => t != target).Sum(t => (long)LoraTargets.Shape(c, t).Out);
        int outF = LoraTargets.Shape(c, target).Out;
        var projection = group[0] switch
        {
            LoraTarget.Q => w.Qkv,
            LoraTarget.O => w.O,
            LoraTarget.Gate => w.GateUp,
            _ => w.Down,
        } ?? throw new ArgumentException($"layer {layer} has experts, not one {LoraTargets.ModulePath(target)}");
        var bias = group[0] switch
        {
            LoraTarget.Q => w.QkvBias?.narrow(0, offset, outF),
            LoraTarget.O => w.OBias?.narrow(0, 0, outF),
            _ => null,
        };
        return (projection.RowSlice(offset, outF), bias);
    }

    public void Dispose()
    {
        Embed.Dispose();
        foreach (var l in Layers)
            l.Dispose();
        FinalNorm.Dispose();
        if (!Tied)
            LmHead.Dispose();
    }
}
