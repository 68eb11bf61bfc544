using System.Text.RegularExpressions;
using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Contracts.Safetensors;

namespace Serving.AdapterStore.Peft;

/// <summary>
/// The LoRA of a mixture of experts' experts in a PEFT adapter, in the two forms PEFT writes them:
/// <list type="bullet">
/// <item>one module per expert, as any projection (Mixtral's <c>block_sparse_moe.experts.N.w1/w3/w2</c>, Qwen-MoE's
/// <c>mlp.experts.N.gate_proj/up_proj/down_proj</c>): A <c>[r, in]</c>, B <c>[out, r]</c>;</item>
/// <item><c>target_parameters</c> on stacked experts (gpt-oss's <c>mlp.experts.gate_up_proj [E, H, 2I]</c> and
/// <c>down_proj [E, I, H]</c>, x·W): PEFT's <c>ParamWrapper</c> holds one A <c>[E·r, in]</c> and one B <c>[out, r·E]</c>
/// per parameter, and adds <c>ΔW[e] = scale · (B_e · A_e)ᵀ</c> with <c>A_e = A[e·r .. (e+1)·r]</c> and
/// <c>B_e[:, j] = B[:, j·E + e]</c> (its <c>einsum("o r e, e r i -> e i o")</c>). Two parameters of one module nest, the
/// inner one's tensors under <c>base_layer.</c>; which parameter a pair adapts is read off its shapes. Of gate_up's output
/// columns the even ones are the gate's and the odd ones the up projection's, so each expert becomes a gate and an up
/// module sharing A_e and a down module — each exactly the expert's LoRA.</item>
/// </list>
/// The router and a shared expert are not adapted here (the caller refuses them).
/// </summary>
internal sealed partial class PeftExpertTensors(ModelConfig model, PeftLoraConfig peft, string adapter)
{
    [GeneratedRegex(@"^(?:base_model\.model\.)?(?<prefix>model\.)layers\.(?<layer>\d+)\.(?<block>block_sparse_moe|mlp)\.experts\.(?<expert>\d+)\.(?<module>w1|w2|w3|gate_proj|up_proj|down_proj)\.lora_(?<ab>[AB])(?:\.[A-Za-z0-9_\-]+)?\.weight$")]
    private static partial Regex PerExpertName();

    [GeneratedRegex(@"^(?:base_model\.model\.)?(?<prefix>model\.)layers\.(?<layer>\d+)\.mlp\.experts\.(?<nest>(?:base_layer\.)*)lora_(?<ab>[AB])(?:\.[A-Za-z0-9_\-]+)?\.weight$")]
    private static partial Regex StackedName();

    private readonly MixtureOfExperts _moe = model.Experts ?? throw new ArgumentException("the model has no mixture of experts", nameof(model));
    private readonly Dictionary<(int Layer, int Expert, LoraTarget Target), (SafetensorsTensorInfo? A, SafetensorsTensorInfo? B, string FullName)> _perExpert = [];
    private readonly Dictionary<(int Layer, int Depth), (SafetensorsTensorInfo? A, SafetensorsTensorInfo? B, string Prefix)> _stacked = [];

    /// <summary>Modules (per-expert modules and stacked parameters) found so far.</summary>
    public int Count => _perExpert.Count + _stacked.Count;

    /// <summary>Takes <paramref name="t"/> when it is an expert's LoRA tensor (checking its layer and expert); false when it is not one.</summary>
    public bool TryAdd(SafetensorsTensorInfo t)
    {
        if (PerExpertName().Match(t.Name) is { Success: true } m)
        {
            int layer = Layer(t, m), expert = PeftAdapterReader.Index(m.Groups["expert"].Value);
            string block = m.Groups["block"].Value, module = m.Groups["module"].Value;
            bool mixtral = model.Architecture == "MixtralForCausalLM";
            if (_moe.StackedExperts || mixtral != (block == "block_sparse_moe") || mixtral != module.StartsWith('w'))
                throw PeftAdapterReader.Fail(adapter, t.Name, $"targets '{block}.experts.{expert}.{module}', which this base model ({model.Architecture}) does not have");
            if (expert >= _moe.Experts)
                throw PeftAdapterReader.Fail(adapter, t.Name, $"targets expert {expert}; the base model's layers have {_moe.Experts}");
            var target = module switch { "w1" or "gate_proj" => LoraTarget.Gate, "w3" or "up_proj" => LoraTarget.Up, _ => LoraTarget.Down };
            var key = (layer, expert, target);
            _perExpert.TryGetValue(key, out var pair);
            string fullName = $"{m.Groups["prefix"].Value}layers.{layer}.{block}.experts.{expert}.{module}";
            _perExpert[key] = m.Groups["ab"].Value == "A" ? (Once(pair.A, t), pair.B, fullName) : (pair.A, Once(pair.B, t), fullName);
            return true;
        }

        if (StackedName().Match(t.Name) is { Success: true } s)
        {
            if (!_moe.StackedExperts)
                throw PeftAdapterReader.Fail(adapter, t.Name, "adapts stacked experts (target_parameters); this base model's experts are modules, adapted one by one");
            int layer = Layer(t, s), depth = s.Groups["nest"].Value.Length / "base_layer.".Length;
            _stacked.TryGetValue((layer, depth), out var pair);
            _stacked[(layer, depth)] = s.Groups["ab"].Value == "A" ? (Once(pair.A, t), pair.B, s.Groups["prefix"].Value) : (pair.A, Once(pair.B, t), s.Groups["prefix"].Value);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Every module found, checked (pairs complete, targeted by the config, shapes, ranks), as a reader of its expert modules
    /// given a reader of a tensor's floats.
    /// </summary>
    public IReadOnlyList<Func<Func<SafetensorsTensorInfo, float[]>, LoraModuleWeights[]>> Plans(int maxRank)
    {
        string First() => _perExpert.Values.Select(p => (p.A ?? p.B)!.Name).Concat(_stacked.Values.Select(p => (p.A ?? p.B)!.Name)).First();
        if (Count > 0 && peft.UseDora)
            throw PeftAdapterReader.Fail(adapter, First(), "adapts an expert, and use_dora is set: DoRA on experts is not served");
        if (Count > 0 && peft.FanInFanOut)
            throw PeftAdapterReader.Fail(adapter, First(), "adapts an expert, and fan_in_fan_out is set, which PEFT's expert LoRA does not take");
        var plans = new List<Func<Func<SafetensorsTensorInfo, float[]>, LoraModuleWeights[]>>();
        foreach (var ((layer, expert, target), (a, b, fullName)) in _perExpert.OrderBy(p => p.Key))
        {
            var (tensorA, tensorB) = Complete(a, b);
            if (!peft.Targets(fullName, layer))
                throw PeftAdapterReader.Fail(adapter, tensorA.Name, $"module '{fullName}' is not selected by target_modules / layers_to_transform in {PeftLoraConfig.FileName}");
            var (rank, alpha) = Rank(peft.For(fullName), tensorA, maxRank);
            var (inF, outF) = LoraTargets.ExpertShape(model, target);
            PeftAdapterReader.CheckShape(adapter, tensorA, [rank, inF]);
            PeftAdapterReader.CheckShape(adapter, tensorB, [outF, rank]);
            float scale = (float)peft.Scale(rank, alpha);
            plans.Add(read => [new LoraModuleWeights(layer, target, rank, scale, read(tensorA), read(tensorB), Expert: expert)]);
        }

        var seen = new HashSet<(int Layer, bool GateUp)>();
        foreach (var ((layer, _), (a, b, prefix)) in _stacked.OrderBy(p => p.Key))
        {
            var (tensorA, tensorB) = Complete(a, b);
            int h = model.HiddenSize, inter = _moe.IntermediateSize;
            bool gateUp = tensorA.Shape is [_, var inA] && tensorB.Shape is [var outB, _] && (inA, outB) == (h, 2 * inter);
            if (!gateUp && !(tensorA.Shape is [_, var inD] && tensorB.Shape is [var outD, _] && (inD, outD) == (inter, h)))
                throw PeftAdapterReader.Fail(adapter, tensorA.Name, $"with its lora_B has shapes [{string.Join(", ", tensorA.Shape)}] and [{string.Join(", ", tensorB.Shape)}]; "
                    + $"this base model's stacked experts take [{_moe.Experts}·r, {h}] and [{2 * inter}, r·{_moe.Experts}] (gate_up_proj) or [{_moe.Experts}·r, {inter}] and [{h}, r·{_moe.Experts}] (down_proj)");
            string fullName = $"{prefix}layers.{layer}.mlp.experts.{(gateUp ? "gate_up_proj" : "down_proj")}";
            if (!seen.Add((layer, gateUp)))
                throw PeftAdapterReader.Fail(adapter, tensorA.Name, $"is a second LoRA of '{fullName}'");
            if (!peft.TargetsParameter(fullName, layer))
                throw PeftAdapterReader.Fail(adapter, tensorA.Name, $"parameter '{fullName}' is not selected by target_parameters / layers_to_transform in {PeftLoraConfig.FileName}");
            var (rank, alpha) = Rank(peft.For(fullName), tensorA, maxRank);
            int experts = _moe.Experts, inF = gateUp ? h : inter, outF = gateUp ? 2 * inter : h;
            PeftAdapterReader.CheckShape(adapter, tensorA, [(long)experts * rank, inF]);
            PeftAdapterReader.CheckShape(adapter, tensorB, [outF, (long)rank * experts]);
            float scale = (float)peft.Scale(rank, alpha);
            plans.Add(read => Split(layer, gateUp, rank, scale, inF, outF, read(tensorA), read(tensorB)));
        }

        return plans;
    }

    /// <summary>A stacked parameter's LoRA as each expert's modules (the class remarks).</summary>
    private LoraModuleWeights[] Split(int layer, bool gateUp, int rank, float scale, int inF, int outF, float[] a, float[] b)
    {
        int experts = _moe.Experts;
        var modules = new List<LoraModuleWeights>(experts * (gateUp ? 2 : 1));
        for (int e = 0; e < experts; e++)
        {
            var aE = a.AsSpan(e * rank * inF, rank * inF).ToArray();
            float[] Columns(int firstRow, int step)
            {
                var rows = outF / step;
                var bE = new float[rows * rank];
                for (int o = 0; o < rows; o++)
                    for (int j = 0; j < rank; j++)
                        bE[o * rank + j] = b[(long)(firstRow + o * step) * rank * experts + j * experts + e];
                return bE;
            }

            if (gateUp)
            {
                modules.Add(new LoraModuleWeights(layer, LoraTarget.Gate, rank, scale, aE, Columns(0, 2), Expert: e));
                modules.Add(new LoraModuleWeights(layer, LoraTarget.Up, rank, scale, aE, Columns(1, 2), Expert: e));
            }
            else
                modules.Add(new LoraModuleWeights(layer, LoraTarget.Down, rank, scale, aE, Columns(0, 1), Expert: e));
        }

        return [.. modules];
    }

    private int Layer(SafetensorsTensorInfo t, Match m)
    {
        int layer = PeftAdapterReader.Index(m.Groups["layer"].Value);
        if (layer >= model.NumLayers)
            throw PeftAdapterReader.Fail(adapter, t.Name, $"targets layer {layer}; the base model has {model.NumLayers} layers");
        if (!_moe.IsSparse(layer))
            throw PeftAdapterReader.Fail(adapter, t.Name, $"targets the experts of layer {layer}, whose MLP is dense in this base model");
        return layer;
    }

    private SafetensorsTensorInfo Once(SafetensorsTensorInfo? held, SafetensorsTensorInfo t) =>
        held is null ? t : throw PeftAdapterReader.Fail(adapter, t.Name, $"is a second tensor for the same LoRA weight as '{held.Name}'");

    private (SafetensorsTensorInfo A, SafetensorsTensorInfo B) Complete(SafetensorsTensorInfo? a, SafetensorsTensorInfo? b) =>
        a is null || b is null ? throw PeftAdapterReader.Fail(adapter, (a ?? b)!.Name, $"has no matching lora_{(a is null ? "A" : "B")} tensor") : (a, b);

    private (int Rank, double Alpha) Rank((int Rank, double Alpha) configured, SafetensorsTensorInfo a, int maxRank) =>
        configured.Rank > maxRank ? throw PeftAdapterReader.Fail(adapter, a.Name, $"rank {configured.Rank} is above the server's max rank {maxRank}") : configured;
}
