using F = TorchSharp.torch.nn.functional;
using Serving.Contracts.Configuration;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>One layer's attention over the paged KV cache for a step's rows: decode rows together, prefill slices one by one.</summary>
internal static class StepAttention
{
    /// <summary>
    /// q: [T, Hq, D]; the cache's layer <paramref name="layer"/>: keys and values [Hkv, R, D] (R = blocks × block size), the
    /// two halves of one [2·Hkv, R, D] tensor, which the libtorch path gathers in one index_select. Returns [T, Hq·D].
    /// Grouped-query attention without copying K/V per query head: query head h uses KV head h / G, so the G query
    /// heads of one KV head are folded into the query-length axis and attended by libtorch's fused
    /// scaled_dot_product_attention (softmax accumulated in float32 for half types):
    /// <code>
    /// decode:  q[B, Hkv, G, D] · K[B, Hkv, L, D]ᵀ  (+ mask[B, 1, 1, L]: −∞ beyond each row's length)
    /// prefill: q[1, Hkv, G·n, D] · K[1, Hkv, end − first, D]ᵀ    (mask: position j visible to token i iff window start ≤ j ≤ start + i)
    /// K[b, :, j] = cache[row(b, j)]: each sequence's positions gathered through its block table (padding rows read row 0, masked).
    /// </code>
    /// With <paramref name="sinks"/> (gpt-oss, <c>[Hq]</c> float32) each head's sink logit joins its softmax (<see cref="ModelConfig.AttentionSinks"/>).
    /// </summary>
    public static Tensor Apply(Tensor q, KvCache cache, int layer, StepIndices step, ModelConfig c, bool cpuDecodeAttention, Tensor? sinks = null)
    {
        var keysAndValues = cache.KeysAndValues(layer);
        long t = q.size(0);
        int g = c.QueryGroupSize;
        Tensor? decodeOut = null;
        if (step.DecodeCount > 0)
        {
            // libtorch's CPU attention takes a far slower path for a strided query in bfloat16: make it contiguous.
            if (cpuDecodeAttention && PagedDecodeAttention.Supports(q, cache.Keys(layer)))
            {
                var qr = step.AllDecode ? q : q.index_select(0, step.DecodeTokens!);
                decodeOut = PagedDecodeAttention.Apply(qr, cache.Keys(layer), cache.Values(layer), step.DecodeRowTable, step.DecodeContext, step.DecodeLengths,
                    (float)(c.AttentionSoftcap ?? 0), sinks);
            }
            else
            {
                var qd = (step.AllDecode ? q.contiguous() : q.index_select(0, step.DecodeTokens!)).view(step.DecodeCount, c.NumKvHeads, g, c.HeadDim);
                var kvd = Gather(keysAndValues, step.DecodeRows!, step.DecodeCount);      // [B, 2·Hkv, L, D]: K and V in one gather
                // query head h·G + g of a row is qd[b, h, g]: its sink at [h, g]
                var sinkColumn = sinks?.view(1, c.NumKvHeads, g, 1).expand(step.DecodeCount, -1, -1, -1);
                decodeOut = Attend(qd, kvd.narrow(1, 0, c.NumKvHeads), kvd.narrow(1, c.NumKvHeads, c.NumKvHeads), step.DecodeMask, c, sinkColumn)
                    .reshape(step.DecodeCount, c.NumHeads * c.HeadDim);
            }

            if (step.AllDecode)
                return decodeOut;
        }

        var output = empty([t, c.NumHeads * c.HeadDim], q.dtype, q.device);
        if (decodeOut is not null)
            output.index_copy_(0, step.DecodeTokens!, decodeOut);
        for (int i = 0; i < step.Prefill.Count; i++)
        {
            var s = step.Prefill[i];
            output.narrow(0, s.Offset, s.Count).copy_(Prefill(q.narrow(0, s.Offset, s.Count), keysAndValues, s, step, i, c, sinks));
        }

        return output;
    }

    /// <summary>
    /// softmax(q·kᵀ/√D + mask)·v: libtorch's fused attention, or with Gemma 2's soft cap or gpt-oss's sinks, which it has no
    /// place for, the same in float32 ops — <c>s = cap·tanh(q·kᵀ/(√D·cap))</c> before the mask; the sink logit a last column
    /// of the softmax, dropped after it — rounded once to q's dtype.
    /// q <c>[B, H, M, D]</c>, k and v <c>[B, H, L, D]</c>, mask broadcast to <c>[B, H, M, L]</c> or null, sinkColumn
    /// <c>[B, H, M, 1]</c> float32 or null → <c>[B, H, M, D]</c>.
    /// </summary>
    private static Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask, ModelConfig c, Tensor? sinkColumn)
    {
        if (c.AttentionSoftcap is not double cap && sinkColumn is null)
            return F.scaled_dot_product_attention(q, k, v, mask);
        using var scope = NewDisposeScope();
        var scores = q.to(ScalarType.Float32).matmul(k.to(ScalarType.Float32).transpose(-1, -2));
        if (c.AttentionSoftcap is double softcap)
            scores.TimesInPlace(1 / (Math.Sqrt(c.HeadDim) * softcap)).tanh_().TimesInPlace(softcap);
        else
            scores.TimesInPlace(1 / Math.Sqrt(c.HeadDim));
        if (mask is not null)
            scores.PlusInPlace(mask.to(ScalarType.Float32));
        long keys = scores.size(-1);
        var probabilities = sinkColumn is null ? scores.softmax(-1) : cat([scores, sinkColumn], -1).softmax(-1).narrow(-1, 0, keys);
        return probabilities.matmul(v.to(ScalarType.Float32)).to(q.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>[B·L] physical rows → [B, Hkv, L, D] (a view of the gathered [Hkv, B·L, D]; each [L, D] slab contiguous).</summary>
    private static Tensor Gather(Tensor cacheLayer, Tensor rows, int sequences) =>
        cacheLayer.index_select(1, rows).view(cacheLayer.size(0), sequences, -1, cacheLayer.size(2)).transpose(0, 1);

    /// <summary>Causal attention of one sequence's n new tokens over its cache prefix. q: [n, Hq, D] → [n, Hq·D].</summary>
    private static Tensor Prefill(Tensor q, Tensor keysAndValues, SequenceSlice s, StepIndices step, int i, ModelConfig c, Tensor? sinks)
    {
        int n = s.Count, g = c.QueryGroupSize;
        var rows = step.PrefillRows[i];
        // 4-D inputs: libtorch's fused (flash) CPU attention takes only 4-D ones; 3-D fell back to the unfused maths path,
        // which upcasts to float32 and materialises the scores (measured 4–5× slower for 64–512-token prompts).
        var qs = q.view(n, c.NumKvHeads, g, c.HeadDim).permute(1, 2, 0, 3).reshape(1, c.NumKvHeads, g * n, c.HeadDim);
        var kvs = Gather(keysAndValues, rows, 1);                                      // [1, 2·Hkv, end, D]
        // query head h·G + g of token t is qs[0, h, g·n + t]: its sink at [h, g]
        var sinkColumn = sinks?.view(c.NumKvHeads, g, 1).expand(-1, -1, n).reshape(1, c.NumKvHeads, g * n, 1);
        var attended = Attend(qs, kvs.narrow(1, 0, c.NumKvHeads), kvs.narrow(1, c.NumKvHeads, c.NumKvHeads), step.PrefillMask(i, g), c, sinkColumn);   // [1, Hkv, G·n, D]
        return attended.view(c.NumKvHeads, g, n, c.HeadDim).permute(2, 0, 1, 3).reshape(n, c.NumHeads * c.HeadDim);
    }
}
