using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Model;

/// <summary>
/// <see cref="LlamaModel.Forward"/> for an all-decode step of a bfloat16 or float32 model on the CPU, with every projection
/// either AMX-packed (bf16), int8, or (steps of up to <see cref="SmallBatchGemv.MaxRows"/> rows) plain for the small-batch kernel: the
/// same kernels as the general CPU path (so the same logits, bit for bit), run on raw memory into a <see cref="DecodeWorkspace"/>
/// allocated once per token count, so that between one projection GEMM and the next no libtorch op runs at all:
/// <code>
/// per layer:  normed = RMSNorm(x += down)       qkv = normed·Wqkvᵀ (+ LoRA)    [q, k heads RMSNormed (Qwen3, Gemma 3)]  RoPE(q, k) and K/V → cache
///             (Granite: x = embeddings × m; q, o and down scaled by its multipliers; logits ÷ its scaling)
///             attention = decode attention (q read in place in qkv; the layer's window; gpt-oss's sinks)   o = attention·Woᵀ (+ b) (+ LoRA)   [o = RMSNorm(o) (Gemma)]
///             normed = RMSNorm(x += o)           gateUp = normed·Wguᵀ (+ LoRA)  activated = act(gate)·up (SwiGLU, GeGLU)
///             down = activated·Wdownᵀ (+ LoRA)  [down = RMSNorm(down) (Gemma)]
///             (a mixture of experts: down = the routed experts' weighted sum, ExpertMlpRaw)
/// logits = RMSNorm(x += down)·Wlmᵀ, float32           (all else in the model's dtype)
/// </code>
/// Why: a decode step streams every weight through the caches, which evicts libtorch's dispatcher, allocator and tensor
/// state; each small op after a GEMM (a view, an allocation, a contiguous copy, the frees at the end of a layer) then
/// misses to memory. Measured on the bench preset: a narrow + view takes 2 µs warm and 20–28 µs after a 64 MB sweep,
/// and the step's views, allocations and shape reads between GEMMs came to about 1 ms of a 14 ms step.
/// </summary>
/// <param name="model">The model whose steps it runs.</param>
/// <param name="layerRopes">Each layer's RoPE tables (Gemma 3's sliding layers have their own).</param>
internal sealed unsafe class CpuDecodePath(LlamaModel model, RotaryEmbedding[] layerRopes) : IDisposable
{
    private DecodeWorkspace? _workspace;
    private nint[]? _inputNorms, _postNorms, _qkvBiases, _oBiases, _sinks, _queryNorms, _keyNorms, _attentionOutputNorms, _mlpOutputNorms, _cos, _sin;
    private nint _finalNorm;

    /// <summary>
    /// True when <paramref name="step"/> can take this path: decode rows only, the CPU kernels on, a model (checked once)
    /// in bf16 or float32 on the CPU with inputs of whole 32-column tiles, and every projection able to run the step's rows
    /// on raw memory (AMX-packed, or plain with the small-batch kernel selected and at most its rows).
    /// </summary>
    public bool CanRun(StepIndices step, KvCache cache) =>
        step.AllDecode && step.DecodeCount > 0 && model.FusedCpuDecode && model.CpuElementwise && model.CpuDecodeAttention
        && (_eligible ??= Eligible()) && cache.Keys(0).dtype == model.Dtype
        && (_anyRowCount || model.Kernels.CpuSmallBatchProjections && step.DecodeCount <= SmallBatchGemv.MaxRows);

    /// <summary>Steps run on this path so far.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    private long _steps;

    /// <summary>
    /// Most rows of a step run on a held region (<see cref="HeldTeamRegion"/>). Why: at 1 and 8 rows the step was 4–7 %
    /// faster held (bench preset, bf16 and int8), and C = 8 through the server 3–9 %. At C = 32 (steps of about 30 rows) a
    /// first series went either way (0.87–1.09 over six pairs: the held team's waiting thread takes CPU from the request
    /// threads on a 2-core machine); once the small work of a held step was shared with the team, eleven runs held against
    /// five not held gave 643–700 against 641–674 tokens/s (medians 687 and 661) and every held run a shorter mean decode step
    /// (docs/benchmarks/int8.md). Larger steps are unmeasured and keep a region per call.
    /// </summary>
    private const int HeldRegionMaxRows = 32;
    private bool? _eligible;
    private bool _anyRowCount;

    private bool Eligible()
    {
        var c = model.Config;
        var w = model.Weights;
        if (model.Dtype is not (ScalarType.BFloat16 or ScalarType.Float32) || model.Device.type != TorchSharp.DeviceType.CPU || !DecodeAttentionScores.Supports(c.HeadDim)
            || !VectorExp.IsSupported || c.HiddenSize % 32 != 0 || c.IntermediateSize % 32 != 0
            || c.NumHeads * c.HeadDim % 32 != 0 || c.Experts is { IntermediateSize: var expertSize, SharedExpertSize: var sharedSize } && (expertSize % 32 != 0 || sharedSize % 32 != 0))
            return false;
        var vectors = w.Layers.SelectMany(l => l.Vectors).Append(w.FinalNorm).Concat(layerRopes.Distinct().SelectMany(r => new[] { r.Cos, r.Sin }));
        var projections = w.Layers.SelectMany(l => l.Projections).Append(w.LmHead).ToList();
        _anyRowCount = projections.All(p => p.TakesAnyRowCount);
        return projections.All(p => p.RunsOnRawMemory(1, model.Dtype))
            && vectors.All(v => CpuElementwiseKernels.Supports(v) && v.dtype == model.Dtype)
            && w.Layers.All(l => l.Sinks is null || CpuElementwiseKernels.Supports(l.Sinks) && l.Sinks.dtype == ScalarType.Float32);
    }

    /// <summary>Runs the step; returns float32 logits <c>[T, vocab]</c> in the caller's dispose scope.</summary>
    public Tensor Run(StepWindows steps, KvCache cache, LoraBatchMapping? lora)
    {
        var c = model.Config;
        var step = steps.Shared;
        int t = step.DecodeCount;
        Addresses();
        var ws = Interlocked.Exchange(ref _workspace, null);
        if (ws is null || ws.Tokens != t)
        {
            ws?.Dispose();
            ws = new DecodeWorkspace(c, t, model.Dtype);
        }

        try
        {
            int[] positions = step.TokenPositions as int[] ?? step.TokenPositions.ToArray();
            foreach (int p in positions)
                if ((uint)p >= (uint)layerRopes[0].MaxPositions)
                    throw new ArgumentException($"position {p} is beyond the RoPE tables' {layerRopes[0].MaxPositions}");
            var x = model.Weights.Embed.Rows(step.Tokens);
            if (c.EmbeddingMultiplier != 1)
                x.TimesInPlace(c.EmbeddingMultiplier);              // Granite; as the per-op path scales, so the same bits
            var logits = empty([t, c.VocabSize], ScalarType.Float32);
            var layers = new Layers(this, steps, cache, lora, ws, positions, x, logits);
            // The step's parallel calls on one held region, not a region each, unless a LoRA update would take libtorch's
            // tensor path (libtorch's own parallel ops run on one thread inside a region) or the step is large (see HeldRegionMaxRows).
            if (t <= HeldRegionMaxRows && (lora is null || RawLora(lora)))
                HeldTeamRegion.Run(ref layers);
            else
                layers.Run();
            LogitScaling.Apply(logits, c);
            return logits;
        }
        finally
        {
            if (Interlocked.CompareExchange(ref _workspace, ws, null) is not null)
                ws.Dispose();   // another step ran beside this one and kept its own
        }
    }

    /// <summary>The step's work from the embedded rows in <paramref name="x"/> to float32 <paramref name="logits"/>: every layer, the final norm, the lm_head.</summary>
    private void RunLayers(StepWindows steps, KvCache cache, LoraBatchMapping? lora, DecodeWorkspace ws, int[] positions, Tensor x, Tensor logits)
    {
        var c = model.Config;
        var w = model.Weights;
        var step = steps.Shared;
        int t = step.DecodeCount, h = c.HiddenSize, hq = c.NumHeads, hkv = c.NumKvHeads, d = c.HeadDim;
        int qkvWidth = (hq + 2 * hkv) * d;
        float eps = (float)c.RmsNormEps;
        bool bf16 = model.Dtype == ScalarType.BFloat16;
        long cacheRows = (long)cache.TotalBlocks * cache.BlockSize;
        byte* xp = CpuTensorMemory.Address(x), normed = CpuTensorMemory.Address(ws.Normed), qkv = CpuTensorMemory.Address(ws.Qkv);
        byte* attention = CpuTensorMemory.Address(ws.Attention), o = CpuTensorMemory.Address(ws.O);
        byte* gateUp = CpuTensorMemory.Address(ws.GateUp), activated = CpuTensorMemory.Address(ws.Activated);
        byte* down = CpuTensorMemory.Address(ws.Down);
        for (int l = 0; l < w.Layers.Count; l++)
        {
            var layer = w.Layers[l];
            var attended = steps.For(l);
            byte* keys = cache.KeysAddress(l), values = cache.ValuesAddress(l);
            // OLMo 2 norms no layer input: attention (and the MLP) read the residual stream x itself.
            var (attentionIn, attentionInAddress) = Input(_inputNorms![l], xp, l == 0 ? null : down, x, ws, normed, t, h, eps, bf16);
            layer.Qkv.LinearRaw((byte*)attentionInAddress, t, (void*)_qkvBiases![l], qkv, float32Output: false);
            if (lora is not null)
                Lora(l, LoraTarget.Q, attentionIn, (byte*)attentionInAddress, ws.Qkv, qkv, qkvWidth, lora, bf16);
            if (_queryNorms![l] != 0)
                HeadRmsNormKernel.Apply(qkv, t, hq, hkv, d, (byte*)_queryNorms[l], (byte*)_keyNorms![l], eps, bf16, c.QkNormAcrossHeads);
            if (c.AttentionMultiplier is double scale)
                RowScaling.Apply(qkv, t, qkvWidth, hq * d, (float)(scale * Math.Sqrt(d)), bf16);
            CpuElementwiseKernels.Rotate(qkv, t, qkvWidth, hq + hkv, d, c.RotaryDim / 2, (byte*)_cos![l], (byte*)_sin![l], positions, keys, values, hkv, cacheRows,
                attended.RowPerTokenHost.Span, bf16);
            PagedDecodeAttention.Apply(qkv, qkvWidth, keys, values, attention, bf16, attended.DecodeRowTable, attended.DecodeContext,
                attended.DecodeLengths, hq, hkv, d, cacheRows, (float)(c.AttentionSoftcap ?? 0), (float*)_sinks![l]);
            layer.O.LinearRaw(attention, t, (void*)_oBiases![l], o, float32Output: false);
            if (lora is not null)
                Lora(l, LoraTarget.O, ws.Attention, attention, ws.O, o, h, lora, bf16);
            if (c.ResidualMultiplier != 1)
                RowScaling.Apply(o, t, h, h, (float)c.ResidualMultiplier, bf16);
            if (_attentionOutputNorms![l] != 0)
                CpuElementwiseKernels.RmsNorm(o, (byte*)_attentionOutputNorms[l], o, null, t, h, eps, bf16);
            var (mlpIn, mlpInAddress) = Input(_postNorms![l], xp, o, x, ws, normed, t, h, eps, bf16);
            if (layer.Experts is not null)
                ExpertMlpRaw.Run(layer, c, ws, (byte*)mlpInAddress, down, t, bf16, lora is not null && lora.EntrySlots.Any(model.Adapters!.AdaptsExperts)
                    ? new ExpertAdapters(l, model.Adapters, lora, null, (CpuLoraKernel)model.LoraKernel) : null);
            else
            {
                bool adaptedMlp = lora is not null && c.Experts is null;      // a mixture-of-experts model's adapters adapt experts, not a dense layer's MLP
                layer.GateUp!.LinearRaw((byte*)mlpInAddress, t, null, gateUp, float32Output: false);
                if (adaptedMlp)
                    Lora(l, LoraTarget.Gate, mlpIn, (byte*)mlpInAddress, ws.GateUp, gateUp, 2 * c.IntermediateSize, lora!, bf16);
                CpuElementwiseKernels.GatedActivation(gateUp, activated, t, c.IntermediateSize, c.Activation, bf16, (float)(c.SwigluLimit ?? 0));
                layer.Down!.LinearRaw(activated, t, null, down, float32Output: false);
                if (adaptedMlp)
                    Lora(l, LoraTarget.Down, ws.Activated, activated, ws.Down, down, h, lora!, bf16);
            }

            if (c.ResidualMultiplier != 1)
                RowScaling.Apply(down, t, h, h, (float)c.ResidualMultiplier, bf16);
            if (_mlpOutputNorms![l] != 0)
                CpuElementwiseKernels.RmsNorm(down, (byte*)_mlpOutputNorms[l], down, null, t, h, eps, bf16);
        }

        CpuElementwiseKernels.RmsNorm(xp, (byte*)_finalNorm, normed, down, t, h, eps, bf16);
        w.LmHead.LinearRaw(normed, t, null, CpuTensorMemory.Address(logits), float32Output: true);
        Interlocked.Increment(ref _steps);
    }

    /// <summary>
    /// A sublayer's input: x += <paramref name="residual"/> (when given) and its RMSNorm into the workspace's normed rows, or
    /// without a norm (<paramref name="norm"/> 0: OLMo 2) x itself after the add.
    /// </summary>
    private static (Tensor Input, nint Address) Input(nint norm, byte* xp, byte* residual, Tensor x, DecodeWorkspace ws, byte* normed, int t, int h, float eps, bool bf16)
    {
        if (norm != 0)
        {
            CpuElementwiseKernels.RmsNorm(xp, (byte*)norm, normed, residual, t, h, eps, bf16);
            return (ws.Normed, (nint)normed);
        }

        if (residual != null)
            ResidualAddKernel.Apply(xp, residual, t, h, bf16);
        return (x, (nint)xp);
    }

    /// <summary><see cref="RunLayers"/> as a held region's body.</summary>
    private readonly struct Layers(CpuDecodePath path, StepWindows steps, KvCache cache, LoraBatchMapping? lora, DecodeWorkspace ws, int[] positions, Tensor x,
        Tensor logits) : IHeldBody
    {
        public void Run() => path.RunLayers(steps, cache, lora, ws, positions, x, logits);
    }

    /// <summary>True when every LoRA update of the step runs on raw memory (see <see cref="Lora"/>).</summary>
    private bool RawLora(LoraBatchMapping lora) => model.LoraKernel is CpuLoraKernel && lora.SegmentGroups.Count == 0;

    /// <summary>
    /// Whether this path runs the step's adapters: all of them but the experts' when their updates would not run on raw
    /// memory (they have no tensor fallback here; such a step runs per op).
    /// </summary>
    public bool RunsAdapters(LoraBatchMapping? lora) => lora is null || RawLora(lora) || !lora.EntrySlots.Any(model.Adapters!.AdaptsExperts);

    /// <summary>
    /// The LoRA updates of one fused output: on raw memory when the model runs the CPU kernel and the rows need no segment
    /// GEMMs (decode rows rarely form one), else through the kernel's tensor entry point.
    /// </summary>
    private void Lora(int layer, LoraTarget first, Tensor input, byte* inputAddress, Tensor output, byte* outputAddress, int width, LoraBatchMapping lora,
        bool bf16)
    {
        if (RawLora(lora) && model.LoraKernel is CpuLoraKernel cpuKernel)
        {
            var modules = model.Adapters!.FusedModules(layer, first);
            cpuKernel.ApplyRows((nint)inputAddress, (nint)outputAddress, width, bf16, 0, modules, lora);
            DoraScaling.ApplyRaw((nint)outputAddress, width, bf16, modules, lora);
        }
        else
            model.ApplyLora(layer, first, input, output, lora);
    }

    /// <summary>The weights' and tables' addresses, read once: their tensors live, unmoved, as long as the model.</summary>
    private void Addresses()
    {
        if (_inputNorms is not null)
            return;
        var w = model.Weights;
        static nint AddressOrZero(Tensor? t) => t is null ? 0 : (nint)CpuTensorMemory.Address(t);
        _postNorms = w.Layers.Select(l => AddressOrZero(l.PostAttentionNorm)).ToArray();
        _qkvBiases = w.Layers.Select(l => AddressOrZero(l.QkvBias)).ToArray();
        _queryNorms = w.Layers.Select(l => AddressOrZero(l.QNorm)).ToArray();
        _oBiases = w.Layers.Select(l => AddressOrZero(l.OBias)).ToArray();
        _sinks = w.Layers.Select(l => AddressOrZero(l.Sinks)).ToArray();
        _keyNorms = w.Layers.Select(l => AddressOrZero(l.KNorm)).ToArray();
        _attentionOutputNorms = w.Layers.Select(l => AddressOrZero(l.AttentionOutputNorm)).ToArray();
        _mlpOutputNorms = w.Layers.Select(l => AddressOrZero(l.MlpOutputNorm)).ToArray();
        _finalNorm = (nint)CpuTensorMemory.Address(w.FinalNorm);
        _cos = layerRopes.Select(r => (nint)CpuTensorMemory.Address(r.Cos)).ToArray();
        _sin = layerRopes.Select(r => (nint)CpuTensorMemory.Address(r.Sin)).ToArray();
        _inputNorms = w.Layers.Select(l => AddressOrZero(l.InputNorm)).ToArray();
    }

    public void Dispose() => Interlocked.Exchange(ref _workspace, null)?.Dispose();
}
