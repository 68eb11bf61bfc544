using Serving.Contracts.Configuration;
using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// Llama-family decoder (Llama, Mistral, Qwen2): RMSNorm, RoPE, grouped-query attention over a <see cref="KvCache"/>,
/// SwiGLU MLP. One <see cref="Forward"/> runs a packed batch of sequences of different lengths, prefill and decode
/// rows mixed.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    private readonly LlamaWeights _weights;
    private readonly RotaryEmbedding _rope;

    /// <summary>Gemma 3's sliding layers' tables (<see cref="ModelConfig.LocalRopeTheta"/>); null where every layer takes <see cref="_rope"/>.</summary>
    private readonly RotaryEmbedding? _localRope;
    private readonly CpuDecodePath _decodePath;
    private readonly KernelOptions _kernelOptions;

    /// <summary>False for a <see cref="WithKernels"/> view: the weights belong to the model it views.</summary>
    private readonly bool _ownsWeights;

    /// <summary>Whether <see cref="Adapters"/> was enabled on this instance (a view shares its model's arena otherwise).</summary>
    private bool _ownsAdapters;

    /// <param name="config">The checkpoint's configuration.</param>
    /// <param name="weights">Its weights, owned by this model from now on.</param>
    /// <param name="maxPositions">Longest sequence (RoPE table length).</param>
    /// <param name="dtype">Compute dtype.</param>
    /// <param name="device">Where weights and activations live.</param>
    /// <param name="kernels">Which kernels it may use, resolved once here (<see cref="KernelSelection.Select"/>); null: the defaults.</param>
    public LlamaModel(ModelConfig config, LlamaWeights weights, int maxPositions, ScalarType dtype, Device device, KernelOptions? kernels = null)
        : this(config, weights, maxPositions, dtype, device, kernels ?? KernelOptions.Default, ownsWeights: true, adapters: null)
    {
    }

    private LlamaModel(ModelConfig config, LlamaWeights weights, int maxPositions, ScalarType dtype, Device device, KernelOptions kernels, bool ownsWeights,
        LoraSlotArena? adapters)
    {
        Config = config;
        _weights = weights;
        Dtype = dtype;
        Device = device;
        _kernelOptions = kernels;
        _ownsWeights = ownsWeights;
        Adapters = adapters;
        Kernels = KernelSelection.Select(kernels, dtype, device);
        _rope = new RotaryEmbedding(config, maxPositions, dtype, device);
        if (config.LocalRopeTheta is double localTheta)
            _localRope = new RotaryEmbedding(config with { RopeTheta = localTheta, RopeScaling = RopeScaling.None }, maxPositions, dtype, device);
        _decodePath = new CpuDecodePath(this, [.. Enumerable.Range(0, config.NumLayers).Select(RopeOf)]);
    }

    /// <summary>
    /// The same weights and adapter arena with other kernels: a view, no copy, for comparing paths in one process (tests,
    /// benchmarks, training's autograd kernel). Disposing it leaves the weights and the arena to this model.
    /// </summary>
    public LlamaModel WithKernels(KernelOptions kernels) => new(Config, _weights, MaxPositions, Dtype, Device, kernels, ownsWeights: false, Adapters);

    /// <summary>The kernels chosen for this model when it was constructed.</summary>
    public KernelSelection Kernels { get; }

    public ModelConfig Config { get; }
    public ScalarType Dtype { get; }
    public Device Device { get; }
    public LlamaWeights Weights => _weights;
    public int MaxPositions => _rope.MaxPositions;

    /// <summary>The adapter slots rows may use; null until <see cref="EnableAdapters"/>.</summary>
    public LoraSlotArena? Adapters { get; private set; }

    /// <summary>The batched LoRA kernel (<see cref="Kernels"/>).</summary>
    public ILoraKernel LoraKernel => Kernels.Lora;

    /// <summary>For CPU tensors the chosen fast kernel cannot take (not contiguous): the reference kernel.</summary>
    private static readonly ReferenceLoraKernel ReferenceKernel = new();

    /// <summary>Decode attention through <see cref="PagedDecodeAttention"/> (<see cref="KernelOptions.CpuDecodeAttention"/>).</summary>
    public bool CpuDecodeAttention => Kernels.CpuDecodeAttention;

    /// <summary>Element-wise CPU kernels (<see cref="KernelOptions.CpuElementwise"/>).</summary>
    public bool CpuElementwise => Kernels.CpuElementwise;

    /// <summary>The fused all-decode CPU path (<see cref="KernelOptions.FusedCpuDecode"/>).</summary>
    public bool FusedCpuDecode => Kernels.FusedCpuDecode;

    /// <summary>Steps that ran as <see cref="CpuDecodePath"/>.</summary>
    internal long FusedDecodeSteps => _decodePath.Steps;

    /// <summary>
    /// Allocates the device-resident adapter arenas: <paramref name="slots"/> adapters of rank ≤ <paramref name="maxRank"/>;
    /// a mixture of experts' experts' slots, made as adapters adapt them, within <paramref name="expertSlotBytes"/>.
    /// </summary>
    public LoraSlotArena EnableAdapters(int slots, int maxRank, long expertSlotBytes = 1L << 30)
    {
        if (Adapters is not null)
            throw new InvalidOperationException("adapters are already enabled");
        Adapters = new LoraSlotArena(Config, slots, maxRank, Dtype, Device, (layer, target) => _weights.Projection(Config, layer, target), expertSlotBytes);
        _ownsAdapters = true;
        return Adapters;
    }

    /// <summary>
    /// A paged KV cache of <paramref name="totalBlocks"/> blocks (default: enough for <paramref name="maxSequences"/> sequences at
    /// <paramref name="maxContext"/> tokens each in every KV group, as <see cref="KvCache.Partition"/> hands them out) of
    /// <paramref name="blockSize"/> positions, its layers in <paramref name="groups"/> (default: one group).
    /// </summary>
    public KvCache CreateKvCache(int maxSequences, int maxContext, int blockSize = 16, int? totalBlocks = null, KvCacheGroups? groups = null)
    {
        int context = Math.Min(maxContext, MaxPositions);
        groups ??= KvCacheGroups.Single(Config.NumLayers);
        if (!groups.Covers(Config.NumLayers))
            throw new ArgumentException($"the KV groups ({groups}) do not cover the model's {Config.NumLayers} layers", nameof(groups));
        int blocks = totalBlocks ?? maxSequences * groups.Count * ((context + blockSize - 1) / blockSize);
        return new KvCache(groups, blocks, blockSize, context, Config.NumKvHeads, Config.HeadDim, Dtype, Device);
    }

    /// <summary>
    /// Runs one step. Writes every token's K/V into <paramref name="cache"/> at its position, then returns float32
    /// logits: <c>[sequences, vocab]</c> for <see cref="LogitsSelection.LastTokenPerSequence"/> or <c>[T, vocab]</c>; with
    /// <paramref name="logitTokens"/>, <c>[logitTokens.Count, vocab]</c> for those packed token indices, in that order
    /// (repeats allowed), whatever the selection.
    /// A token at position p attends to positions 0..p of its own sequence. Given <paramref name="hidden"/>, the final hidden
    /// state of every logits row is left in it too.
    /// </summary>
    public Tensor Forward(ForwardBatch batch, KvCache cache, LogitsSelection selection = LogitsSelection.LastTokenPerSequence,
        LoraBatchMapping? lora = null, IReadOnlyList<int>? logitTokens = null, HiddenStateCapture? hidden = null)
    {
        if (logitTokens is not null && logitTokens.Any(t => (uint)t >= (uint)batch.TokenCount))
            throw new ArgumentException($"a logit token index is outside the batch's {batch.TokenCount} tokens");
        if (lora is not null)
        {
            if (lora.TokenCount != batch.TokenCount)
                throw new ArgumentException($"the adapter mapping covers {lora.TokenCount} tokens, the batch has {batch.TokenCount}");
            if (!lora.IsEmpty && Adapters is null)
                throw new InvalidOperationException("the batch uses adapters but none are enabled on this model");
            if (lora.EntrySlots.Any(s => s >= Adapters!.Slots))
                throw new ArgumentException("the adapter mapping names a slot beyond the arena");
            if (lora.IsEmpty)
                lora = null;
        }

        foreach (int token in batch.Tokens)
            if ((uint)token >= (uint)Config.VocabSize)
                throw new ArgumentException($"token id {token} is outside the vocabulary [0, {Config.VocabSize})");
        cache.CheckTables(batch);

        using var scope = NewDisposeScope();
        using var steps = new StepWindows(batch, cache, Dtype, Device, Config);
        var step = steps.Shared;
        if (logitTokens is null && hidden is null && _decodePath.CanRun(step, cache) && _decodePath.RunsAdapters(lora))
            return _decodePath.Run(steps, cache, lora).MoveToOuterDisposeScope();
        var x = _weights.Embed.Rows(step.Tokens);
        if (Config.EmbeddingMultiplier != 1)
            x.TimesInPlace(Config.EmbeddingMultiplier);
        var tables = StepTables(step);
        Tensor? residual = null;
        for (int l = 0; l < _weights.Layers.Count; l++)
        {
            using var layerScope = NewDisposeScope();
            (x, residual) = Layer(l, x, residual, steps.For(l), tables(l), cache, lora);
        }

        if (hidden is { PooledRanges.Count: > 0 })
            hidden.RecordPooled(RmsNorm((residual is null ? x : x.Plus(residual)).index_select(0, hidden.PooledTokens(Device)), _weights.FinalNorm));
        Tensor normed;
        bool everyRow = logitTokens is null && (selection == LogitsSelection.AllTokens || step.AllDecode);
        if (everyRow && UseCpuElementwise(x) && CpuElementwiseKernels.Supports(_weights.FinalNorm))
            normed = CpuElementwiseKernels.RmsNorm(x, _weights.FinalNorm, (float)Config.RmsNormEps, addFirst: residual);
        else
        {
            x = residual is null ? x : x.Plus(residual);
            var rows = logitTokens is null ? step.LastTokens : tensor(logitTokens.Select(t => (long)t).ToArray(), ScalarType.Int64, Device);
            normed = RmsNorm(everyRow ? x : x.index_select(0, rows), _weights.FinalNorm);
        }

        if (hidden is not null)
            hidden.Rows = normed.to(ScalarType.Float32, CPU, copy: true).DetachFromDisposeScope();
        var logits = _weights.LmHead.Apply(normed, float32Output: true, smallBatchKernel: Kernels.CpuSmallBatchProjections);
        LogitScaling.Apply(logits, Config);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs <see cref="LayerCore"/> inside the caller's per-layer dispose scope and moves what the next layer needs out of it.
    /// The hidden state comes back without the layer's MLP output added: that residual add happens in the next RMSNorm's
    /// pass (or the final one), as the attention output's does in the post-attention norm — one pass over x fewer per layer.
    /// </summary>
    private (Tensor X, Tensor? Residual) Layer(int index, Tensor x, Tensor? residual, StepIndices step, (Tensor Cos, Tensor Sin) angles,
        KvCache cache, LoraBatchMapping? lora, IDictionary<(int Layer, LoraTarget Target), float[]>? capture = null, bool stopBeforeMlp = false)
    {
        var (next, down) = LayerCore(index, x, residual, step, angles, cache, lora, capture, stopBeforeMlp);
        if (!ReferenceEquals(next, x))
            next.MoveToOuterDisposeScope();        // a new tensor (libtorch path); else x itself, updated in place, already outside
        return (next, down?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One decoder layer. x + <paramref name="residual"/> (the previous layer's MLP output, if any) is its input; returns the
    /// hidden state after the attention residual (x itself where the CPU kernels update it in place) and this layer's MLP
    /// output, which the caller adds. With <paramref name="stopBeforeMlp"/> the second is null.
    /// </summary>
    private (Tensor X, Tensor? Residual) LayerCore(int index, Tensor x, Tensor? residual, StepIndices step, (Tensor Cos, Tensor Sin) angles,
        KvCache cache, LoraBatchMapping? lora, IDictionary<(int Layer, LoraTarget Target), float[]>? capture = null, bool stopBeforeMlp = false)
    {
        var w = _weights.Layers[index];
        var c = Config;
        long t = x.size(0);
        int qOut = c.NumHeads * c.HeadDim, kvOut = c.NumKvHeads * c.HeadDim;

        Tensor normed;
        if (w.InputNorm is null)
            normed = x = residual is null ? x : x.Plus(residual);                                              // OLMo 2: no norm before attention
        else if (residual is null)
            normed = RmsNorm(x, w.InputNorm);
        else if (UseCpuElementwise(x) && CpuElementwiseKernels.Supports(residual) && CpuElementwiseKernels.Supports(w.InputNorm))
            normed = CpuElementwiseKernels.RmsNorm(x, w.InputNorm, (float)Config.RmsNormEps, addFirst: residual);   // x += residual in the same pass
        else
        {
            x = x.Plus(residual);
            normed = RmsNorm(x, w.InputNorm);
        }

        ProjectionInputCapture.Add(capture, index, normed, LoraTarget.Q, LoraTarget.K, LoraTarget.V);
        var qkv = w.Qkv.Apply(normed, w.QkvBias, smallBatchKernel: Kernels.CpuSmallBatchProjections);
        if (lora is not null)
            ApplyLora(index, LoraTarget.Q, normed, qkv, lora);   // q, k and v together
        if (w.QNorm is not null)
            RmsNorms.HeadsInPlace(qkv, w, Config, UseCpuElementwise(qkv));
        if (c.AttentionMultiplier is double scale)
        {
            // Granite scales the scores by its multiplier where attention divides by √D: q takes the ratio (before RoPE, which is linear).
            using var queries = qkv.narrow(1, 0, qOut);
            queries.TimesInPlace(scale * Math.Sqrt(c.HeadDim));
        }

        // q and k heads are rotated together: one set of element-wise ops instead of two.
        var keys = cache.Keys(index);
        var values = cache.Values(index);
        Tensor q;
        if (UseCpuElementwise(qkv) && CpuElementwiseKernels.Supports(keys) && CpuElementwiseKernels.Supports(values))
        {
            // One pass rotates q and k in place and stores k and v in their cache rows.
            RopeOf(index).ApplyInPlace(qkv, c.NumHeads + c.NumKvHeads, step.TokenPositions, new KvCacheWrite(keys, values, c.NumKvHeads, step.RowPerTokenHost));
            q = qkv.narrow(1, 0, qOut).view(t, c.NumHeads, c.HeadDim);
        }
        else
        {
            // Every head at once (v with cos 1 and sin 0): three ops for q, k and v, with the step's tables.
            // k and v heads follow q's in qkv as they follow each other in the cache: one indexed copy stores both.
            var heads = RopeOf(index).Apply(qkv.view(t, c.NumHeads + 2 * c.NumKvHeads, c.HeadDim), angles);
            q = heads.narrow(1, 0, c.NumHeads);
            cache.KeysAndValues(index).IndexCopyInPlace(1, step.RowPerToken, heads.narrow(1, c.NumHeads, 2 * c.NumKvHeads).transpose(0, 1));
        }

        var attention = StepAttention.Apply(q, cache, index, step, c, CpuDecodeAttention, w.Sinks);
        ProjectionInputCapture.Add(capture, index, attention, LoraTarget.O);
        var o = w.O.Apply(attention, w.OBias, smallBatchKernel: Kernels.CpuSmallBatchProjections);
        if (lora is not null)
            ApplyLora(index, LoraTarget.O, attention, o, lora);
        if (c.ResidualMultiplier != 1)
            o.TimesInPlace(c.ResidualMultiplier);
        if (w.AttentionOutputNorm is not null)
            o = RmsNorm(o, w.AttentionOutputNorm);
        Tensor normed2;
        if (w.PostAttentionNorm is null)
            normed2 = x = x.Plus(o);                                                                           // OLMo 2: no norm before the MLP
        else if (UseCpuElementwise(x) && CpuElementwiseKernels.Supports(o) && CpuElementwiseKernels.Supports(w.PostAttentionNorm))
        {
            normed2 = CpuElementwiseKernels.RmsNorm(x, w.PostAttentionNorm, (float)Config.RmsNormEps, addFirst: o);   // x += o in the same pass
        }
        else
        {
            x = x.Plus(o);
            normed2 = RmsNorm(x, w.PostAttentionNorm);
        }

        ProjectionInputCapture.Add(capture, index, normed2, LoraTarget.Gate, LoraTarget.Up);
        if (stopBeforeMlp)
            return (x, null);                               // routing capture: the MLP's own GEMMs are not needed
        if (w.Experts is not null)
            return (x, MlpOutput(ExpertMlp.Apply(normed2, w, c, Kernels.CpuSmallBatchProjections, UseCpuElementwise(normed2),
                lora is not null && lora.EntrySlots.Any(Adapters!.AdaptsExperts) ? new ExpertAdapters(index, Adapters, lora, ApplyLora) : null), w));
        var gateUp = w.GateUp!.Apply(normed2, smallBatchKernel: Kernels.CpuSmallBatchProjections);
        bool adaptedMlp = lora is not null && c.Experts is null;      // a mixture-of-experts model's adapters adapt experts, not a dense layer's MLP
        if (adaptedMlp)
            ApplyLora(index, LoraTarget.Gate, normed2, gateUp, lora!);   // gate and up together

        var activated = GatedActivations.Apply(gateUp, c.Activation, c.IntermediateSize, CpuElementwise, c.SwigluLimit);
        ProjectionInputCapture.Add(capture, index, activated, LoraTarget.Down);
        var down = w.Down!.Apply(activated, smallBatchKernel: Kernels.CpuSmallBatchProjections);
        if (adaptedMlp)
            ApplyLora(index, LoraTarget.Down, activated, down, lora!);
        return (x, MlpOutput(down, w));
    }

    /// <summary>The MLP's output as the residual add takes it: Granite's multiplier, Gemma's norm.</summary>
    private Tensor MlpOutput(Tensor down, LlamaLayerWeights w)
    {
        if (Config.ResidualMultiplier != 1)
            down.TimesInPlace(Config.ResidualMultiplier);
        return w.MlpOutputNorm is null ? down : RmsNorm(down, w.MlpOutputNorm);
    }

    /// <summary>
    /// The inputs each projection of the first <paramref name="layers"/> layers sees for <paramref name="prompt"/> on the base
    /// model, as float32 arrays <c>[tokens, in]</c> keyed by (layer, target): what Arrow routing scores adapters against.
    /// The last layer stops before its MLP GEMMs, so its down_proj input is not captured. Runs its own one-sequence cache,
    /// so it may run beside the engine loop.
    /// </summary>
    public Dictionary<(int Layer, LoraTarget Target), float[]> CaptureProjectionInputs(IReadOnlyList<int> prompt, int layers)
    {
        if (prompt.Count == 0)
            throw new ArgumentException("the prompt is empty");
        foreach (int token in prompt)
            if ((uint)token >= (uint)Config.VocabSize)
                throw new ArgumentException($"token id {token} is outside the vocabulary [0, {Config.VocabSize})");
        layers = Math.Clamp(layers, 1, Config.NumLayers);
        var captured = new Dictionary<(int, LoraTarget), float[]>();
        using var cache = CreateKvCache(1, prompt.Count + 1);
        var batch = ForwardBatch.Create([(cache.Partition(0), prompt, 0)]);
        using var scope = NewDisposeScope();
        using var steps = new StepWindows(batch, cache, Dtype, Device, Config);
        var x = _weights.Embed.Rows(steps.Shared.Tokens);
        if (Config.EmbeddingMultiplier != 1)
            x.TimesInPlace(Config.EmbeddingMultiplier);
        var tables = StepTables(steps.Shared);
        Tensor? residual = null;
        for (int l = 0; l < layers; l++)
        {
            using var layerScope = NewDisposeScope();
            (x, residual) = Layer(l, x, residual, steps.For(l), tables(l), cache, null, captured, stopBeforeMlp: l == layers - 1);
        }

        return captured;
    }

    /// <summary>Adds one projection's LoRA updates (<paramref name="module"/>'s) in place, in columns from <paramref name="offset"/>.</summary>
    private void ApplyLora(Tensor input, Tensor output, int offset, LoraModuleArena module, LoraBatchMapping lora)
    {
        var kernel = LoraKernel is CpuLoraKernel && !CpuLoraKernel.Supports(input, output, module) ? ReferenceKernel : LoraKernel;
        kernel.Apply(input, output, offset, module, lora);
    }

    /// <summary>Adds the LoRA updates of the projections of one fused output (starting with <paramref name="first"/>) in place.</summary>
    internal void ApplyLora(int layer, LoraTarget first, Tensor input, Tensor output, LoraBatchMapping lora)
    {
        var modules = Adapters!.FusedModules(layer, first);
        var kernel = LoraKernel is CpuLoraKernel && !CpuLoraKernel.Supports(input, output, modules[0]) ? ReferenceKernel : LoraKernel;
        kernel.Apply(input, output, 0, modules, lora);
        DoraScaling.Apply(output, modules, lora);
    }

    /// <summary>The RoPE tables layer <paramref name="layer"/> rotates by: Gemma 3's local ones in its sliding layers, else the model's.</summary>
    private RotaryEmbedding RopeOf(int layer) => _localRope is not null && Config.WindowOf(layer) is not null ? _localRope : _rope;

    /// <summary>Each layer's libtorch-path RoPE tables for the step (empty where the CPU kernels rotate), built once per kind of table.</summary>
    private Func<int, (Tensor Cos, Tensor Sin)> StepTables(StepIndices step)
    {
        var angles = _rope.StepTables(step.Positions, Config, CpuRotates);
        var local = _localRope?.StepTables(step.Positions, Config, CpuRotates);
        return layer => local is { } l && RopeOf(layer) == _localRope ? l : angles;
    }

    /// <summary>True when the CPU kernels rotate q and k in place, so the libtorch path's RoPE tables are not needed.</summary>
    private bool CpuRotates => CpuElementwise && Device.type == TorchSharp.DeviceType.CPU && Dtype is ScalarType.BFloat16 or ScalarType.Float32;

    private bool UseCpuElementwise(Tensor x) => CpuElementwise && CpuElementwiseKernels.Supports(x);

    /// <summary>HF LlamaRMSNorm: normalise in float32, cast back, then scale: <c>w · (x / √(mean(x²) + ε))</c>.</summary>
    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        if (UseCpuElementwise(x) && CpuElementwiseKernels.Supports(weight))
            return CpuElementwiseKernels.RmsNorm(x, weight, (float)Config.RmsNormEps);
        return RmsNorms.Torch(x, weight, Config.RmsNormEps);
    }

    public void Dispose()
    {
        _decodePath.Dispose();
        if (_kernelOptions.Lora is null)
            (Kernels.Lora as IDisposable)?.Dispose();         // the selector made it for this model
        _rope.Dispose();
        _localRope?.Dispose();
        if (_ownsAdapters)
            Adapters?.Dispose();
        if (_ownsWeights)
            _weights.Dispose();
    }
}
