using Serving.Engine.Checkpoints;
using Serving.Engine.Configuration;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>All weights of a Llama-family model, loaded from HF tensor names into the compute dtype and device.</summary>
internal sealed class LlamaWeights : IDisposable
{
    private LlamaWeights(Tensor embed, IReadOnlyList<LlamaLayerWeights> layers, Tensor finalNorm, Tensor lmHead, bool tied)
    {
        Embed = embed;
        Layers = layers;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        Tied = tied;
    }

    public Tensor Embed { get; }            // [vocab, hidden]
    public IReadOnlyList<LlamaLayerWeights> Layers { get; }
    public Tensor FinalNorm { get; }        // [hidden]
    public Tensor LmHead { get; }           // [vocab, hidden]; the same tensor as Embed when tied
    public bool Tied { get; }

    public long TotalBytes =>
        new[] { Embed, FinalNorm }.Concat(Tied ? [] : new[] { LmHead })
            .Concat(Layers.SelectMany(l => new[] { l.InputNorm, l.PostAttentionNorm }.Concat(l.Projections).Concat(l.QkvBias is null ? [] : [l.QkvBias])))
            .Sum(t => t.NumberOfElements * t.ElementSize);

    public static LlamaWeights Load(ModelConfig c, TensorLoader loader, CheckpointFiles files)
    {
        int h = c.HiddenSize, d = c.HeadDim, qOut = c.NumHeads * d, kvOut = c.NumKvHeads * d;
        var disposables = new List<IDisposable>();
        try
        {
            var embed = loader.Load("model.embed_tokens.weight", c.VocabSize, h);
            disposables.Add(embed);
            var layers = new List<LlamaLayerWeights>(c.NumLayers);
            for (int i = 0; i < c.NumLayers; i++)
            {
                string p = $"model.layers.{i}.";
                var layer = new LlamaLayerWeights
                {
                    InputNorm = loader.Load(p + "input_layernorm.weight", h),
                    Qkv = loader.LoadConcatenated([
                        (p + "self_attn.q_proj.weight", [qOut, h]),
                        (p + "self_attn.k_proj.weight", [kvOut, h]),
                        (p + "self_attn.v_proj.weight", [kvOut, h])]),
                    QkvBias = c.AttentionBias
                        ? loader.LoadConcatenated([
                            (p + "self_attn.q_proj.bias", [qOut]),
                            (p + "self_attn.k_proj.bias", [kvOut]),
                            (p + "self_attn.v_proj.bias", [kvOut])])
                        : null,
                    O = loader.Load(p + "self_attn.o_proj.weight", h, qOut),
                    PostAttentionNorm = loader.Load(p + "post_attention_layernorm.weight", h),
                    GateUp = loader.LoadConcatenated([
                        (p + "mlp.gate_proj.weight", [c.IntermediateSize, h]),
                        (p + "mlp.up_proj.weight", [c.IntermediateSize, h])]),
                    Down = loader.Load(p + "mlp.down_proj.weight", h, c.IntermediateSize),
                };
                disposables.Add(layer);
                layers.Add(layer);
            }

            var norm = loader.Load("model.norm.weight", h);
            disposables.Add(norm);
            bool tied = c.TieWordEmbeddings && !files.Contains("lm_head.weight");
            var lmHead = tied ? embed : loader.Load("lm_head.weight", c.VocabSize, h);
            return new LlamaWeights(embed, layers, norm, lmHead, tied);
        }
        catch
        {
            foreach (var item in disposables)
                item.Dispose();
            throw;
        }
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
