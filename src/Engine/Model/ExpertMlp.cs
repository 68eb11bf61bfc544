using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// A mixture-of-experts layer's MLP (Mixtral, Qwen3-MoE), as transformers computes it:
/// <code>
/// p[t, :]   = softmax(dt(x[t] · Routerᵀ (+ b)))  (float32)     top[t] = the K experts of highest p[t, e] (renormalised to sum 1 where the model says)
/// y[t]      = Σ_{e ∈ top[t]} dt(dt(p[t, e]) · Expert_e(x[t]))     Expert_e(x) = Down_e(act(Gate_e x (+ b)) ⊙ Up_e x (+ b)) (+ b)
/// </code>
/// (gpt-oss: its router and experts biased, its weights the softmax over the top K logits, its activation the clamped SwiGLU),
/// summed expert by expert in ascending order into zeros of x's dtype, as HF's loop adds them (<see cref="ExpertRouting"/>
/// routes, on the host, for this path and the fused decode path alike). Qwen2-MoE adds every token's shared expert,
/// <c>y[t] = dt(y[t] + dt(Shared(x[t]) · dt(σ(x[t] · g))))</c>. Each expert runs once per
/// step on the rows routed to it (gathered, projected, scaled, scattered back): a step's cost is K experts' GEMMs per token,
/// not all of them. x <c>[T, hidden]</c> → <c>[T, hidden]</c>. Adapters of the experts (<see cref="ExpertAdapters"/>) add each
/// routed row's LoRA to its expert's gate and up outputs (before the activation) and to its down output (before the
/// routing weight), as PEFT's merged <c>W + ΔW</c> computes it.
/// </summary>
internal static class ExpertMlp
{
    public static Tensor Apply(Tensor x, LlamaLayerWeights w, ModelConfig c, bool smallBatchKernel, bool cpuElementwise, ExpertAdapters? adapters = null)
    {
        var moe = c.Experts!;
        using var scope = NewDisposeScope();
        long t = x.size(0);
        var logits = w.Router!.Apply(x, w.RouterBias, smallBatchKernel: smallBatchKernel).to(ScalarType.Float32, CPU).contiguous();
        var experts = new int[t * moe.TopK];
        var routed = new float[experts.Length];
        ExpertRouting.Route(logits.data<float>().ToArray(), (int)t, moe, experts, routed);
        var weights = tensor(routed, ScalarType.Float32, x.device).to(x.dtype);      // [T·K], row-major

        var output = zeros_like(x);
        var slotsOf = new List<long>[moe.Experts];
        for (int i = 0; i < experts.Length; i++)
            (slotsOf[experts[i]] ??= []).Add(i);
        for (int e = 0; e < moe.Experts; e++)
        {
            if (slotsOf[e] is not { } slots)
                continue;
            using var expertScope = NewDisposeScope();
            var rowIndices = slots.Select(s => (int)(s / moe.TopK)).ToArray();
            var rows = tensor(rowIndices.Select(r => (long)r).ToArray(), ScalarType.Int64, x.device);
            var slotWeights = weights.index_select(0, tensor(slots.ToArray(), ScalarType.Int64, x.device)).unsqueeze(1);
            var expert = w.Experts![e];
            var input = x.index_select(0, rows);
            var gateUp = expert.GateUp.Apply(input, expert.GateUpBias, smallBatchKernel: smallBatchKernel);
            adapters?.Apply(e, LoraTarget.Gate, input, gateUp, 0, rowIndices);
            adapters?.Apply(e, LoraTarget.Up, input, gateUp, moe.IntermediateSize, rowIndices);
            var activated = GatedActivations.Apply(gateUp, c.Activation, moe.IntermediateSize, cpuElementwise, c.SwigluLimit);
            var y = expert.Down.Apply(activated, expert.DownBias, smallBatchKernel: smallBatchKernel);
            adapters?.Apply(e, LoraTarget.Down, activated, y, 0, rowIndices);
            y.TimesInPlace(slotWeights);
            output.IndexPlusInPlace(0, rows, y);
        }

        if (w.SharedExpert is { } shared)
        {
            // Qwen2-MoE: every token's shared expert, scaled by σ of its gate (taken on the host, as the fused path takes it).
            var y = shared.Down.Apply(GatedActivations.Apply(shared.GateUp.Apply(x, smallBatchKernel: smallBatchKernel), c.Activation, moe.SharedExpertSize,
                cpuElementwise), smallBatchKernel: smallBatchKernel);
            var gateLogits = w.SharedExpertGate!.Apply(x, smallBatchKernel: smallBatchKernel).to(ScalarType.Float32, CPU).contiguous().data<float>().ToArray();
            var gates = tensor(gateLogits.Select(ExpertRouting.SharedGate).ToArray(), [t, 1], ScalarType.Float32).to(x.dtype, x.device);
            output.PlusInPlace(y.TimesInPlace(gates));
        }

        return output.MoveToOuterDisposeScope();
    }
}
