using Serving.Contracts.Lora;
using Serving.Engine.Kernels;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Lora;

/// <summary>
/// Device-resident storage for one (layer, projection) across all adapter slots, preallocated at the maximum rank:
/// <c>A: [slots, maxRank, in]</c> and <c>Bt: [slots, maxRank, out]</c> (B transposed, so the update is a sum of
/// scaled rows), in the model's compute dtype: in bfloat16 that halves the bytes a step with many distinct adapters
/// must stream, which is what bounds the decode-time cost of LoRA. Only the first <c>Ranks[s]</c> rows of a slot are
/// meaningful, and the rows beyond them are zero (a slot's rows are zeroed when it is cleared or a smaller rank replaces a
/// larger one), so a kernel may also compute over all <c>maxRank</c> rows (GatherLoraKernel). Rank 0 = slot does not adapt
/// this projection (all its rows zero).
/// </summary>
public sealed unsafe class LoraModuleArena : IDisposable
{
    public LoraModuleArena(int layer, LoraTarget target, int slots, int maxRank, int inFeatures, int outFeatures, ScalarType dtype, Device device)
    {
        Layer = layer;
        Target = target;
        MaxRank = maxRank;
        In = inFeatures;
        Out = outFeatures;
        A = zeros([slots, maxRank, inFeatures], dtype, device);
        Bt = zeros([slots, maxRank, outFeatures], dtype, device);
        Ranks = new int[slots];
        Scales = new float[slots];
        ScalesOnDevice = zeros([slots], ScalarType.Float32, device);
        DoraScale = ones([slots, outFeatures], ScalarType.Float32, device);
        DoraShift = zeros([slots, outFeatures], ScalarType.Float32, device);
        IsDora = new bool[slots];
        if (device.type == TorchSharp.DeviceType.CPU)
        {
            AAddress = (nint)Runtime.CpuTensorMemory.Address(A);
            BtAddress = (nint)Runtime.CpuTensorMemory.Address(Bt);
            DoraScaleAddress = (nint)Runtime.CpuTensorMemory.Address(DoraScale);
            DoraShiftAddress = (nint)Runtime.CpuTensorMemory.Address(DoraShift);
        }
    }

    /// <summary>‖W_o‖² of the base weight rows (float32 [out]), from the first DoRA fill on: the base never changes under an arena.</summary>
    private Tensor? _baseRowNormsSquared;

    private readonly Lock _baseNormsLock = new();

    /// <summary>
    /// g and the shift of each DoRA module this arena has filled, keyed by the module's weights object (by reference) and
    /// dropped with it: the host tier keeps one object per adapter version, so its refills after an eviction skip the norms
    /// (one [out, in]·[in, r] product per module, most of a DoRA fill's cost), and a new version is a new object. Valid
    /// because the base weights under an arena never change.
    /// </summary>
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<LoraModuleWeights, DoraRowScale> _doraScales = new();

    public int Layer { get; }
    public LoraTarget Target { get; }
    public int MaxRank { get; }
    public int In { get; }
    public int Out { get; }
    public Tensor A { get; }
    public Tensor Bt { get; }
    public int[] Ranks { get; }
    public float[] Scales { get; }

    /// <summary><see cref="Scales"/> as a tensor on the arenas' device <c>[slots]</c> (float32), for kernels that gather by slot there.</summary>
    public Tensor ScalesOnDevice { get; }

    /// <summary>
    /// DoRA, per slot: the output scale <c>g = m / ‖W + scale·B·A‖</c> (row-wise over the input dimension) <c>[slots, out]</c>,
    /// float32, computed when the slot is filled; ones for a slot that is not DoRA.
    /// </summary>
    public Tensor DoraScale { get; }

    /// <summary>DoRA, per slot: <c>(1 − g) ⊙ bias</c> <c>[slots, out]</c> (zeros without a bias), so <c>g ⊙ y + shift</c> leaves the bias unscaled.</summary>
    public Tensor DoraShift { get; }

    /// <summary>Whether slot s holds a DoRA module here (its rows are scaled by <see cref="DoraScale"/>).</summary>
    public bool[] IsDora { get; }

    /// <summary>Where <see cref="DoraScale"/> and <see cref="DoraShift"/> start in CPU memory (0 on other devices).</summary>
    public nint DoraScaleAddress { get; }

    /// <inheritdoc cref="DoraScaleAddress"/>
    public nint DoraShiftAddress { get; }

    /// <summary>
    /// Where <see cref="A"/> and <see cref="Bt"/> start in CPU memory (0 on other devices), read once: the CPU LoRA kernel
    /// runs between GEMMs, where every native call on a tensor costs cache misses.
    /// </summary>
    public nint AAddress { get; }

    /// <inheritdoc cref="AAddress"/>
    public nint BtAddress { get; }

    public long Bytes => (A.NumberOfElements + Bt.NumberOfElements) * A.ElementSize + (DoraScale.NumberOfElements + DoraShift.NumberOfElements) * sizeof(float);

    /// <summary>Changes with every <see cref="Load"/> and <see cref="Clear"/>: a kernel's derived copy of these weights is current while it matches.</summary>
    public long Version { get; private set; }

    /// <param name="slot">The slot to fill.</param>
    /// <param name="w">The module's weights.</param>
    /// <param name="baseWeight">For a DoRA module: this projection's base weight <c>[out, in]</c> as served, and its bias
    /// <c>[out]</c> or null, from which the magnitude's norm is taken.</param>
    public void Load(int slot, LoraModuleWeights w, Func<(Tensor Weight, Tensor? Bias)>? baseWeight = null)
    {
        CheckFits(w);
        if (w.Magnitude is not null && baseWeight is null)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: a DoRA module needs the base weight to be loaded");
        if (Ranks[slot] > w.Rank)
            ZeroRows(slot, w.Rank, Ranks[slot]);
        if (OnCpuMemory)
            CopyIntoCpuMemory(slot, w);
        else
        {
            // Every tensor here is owned and disposed, none left to the finalizer: a temporary that is only the receiver of a
            // native call (A[slot].narrow(...)) can be finalized during that call, freeing the native tensor libtorch is reading.
            using (var a = tensor(w.A, [w.Rank, In]))
            using (var slotA = A[slot])
            using (var target = slotA.narrow(0, 0, w.Rank))
                target.copy_(a);
            using (var b = tensor(w.B, [Out, w.Rank]))
            using (var bt = b.t())
            using (var slotBt = Bt[slot])
            using (var target = slotBt.narrow(0, 0, w.Rank))
                target.copy_(bt);
        }

        if (w.Magnitude is not null)
            LoadDora(slot, w, baseWeight!);
        Ranks[slot] = w.Rank;
        Scales[slot] = w.Scale;
        Version++;
        using (var scale = ScalesOnDevice[slot])
            scale.FillWith(w.Scale);
    }

    /// <summary>Throws when <paramref name="w"/>'s rank, A, B or magnitude do not fit this projection's slots.</summary>
    internal void CheckFits(LoraModuleWeights w)
    {
        if (w.Magnitude is not null && w.Magnitude.Length != Out)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: DoRA magnitude has {w.Magnitude.Length} entries, expected {Out}");
        if (w.Rank > MaxRank)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: rank {w.Rank} exceeds the configured max rank {MaxRank}");
        if (w.A.Length != w.Rank * In || w.B.Length != Out * w.Rank)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: expected A [{w.Rank}, {In}] and B [{Out}, {w.Rank}]");
    }

    /// <summary>Copies g and the shift of DoRA module <paramref name="w"/> (<see cref="RowScale"/>) into <paramref name="slot"/>.</summary>
    private void LoadDora(int slot, LoraModuleWeights w, Func<(Tensor Weight, Tensor? Bias)> baseWeight)
    {
        var rowScale = RowScale(w, baseWeight);
        if (DoraScaleAddress != 0)
        {
            rowScale.Scale.CopyTo(new Span<float>((float*)DoraScaleAddress + (long)slot * Out, Out));
            rowScale.Shift.CopyTo(new Span<float>((float*)DoraShiftAddress + (long)slot * Out, Out));
        }
        else
        {
            using (var values = tensor(rowScale.Scale))
            using (var row = DoraScale[slot])
                row.copy_(values);
            using (var values = tensor(rowScale.Shift))
            using (var row = DoraShift[slot])
                row.copy_(values);
        }

        IsDora[slot] = true;
    }

    /// <summary>
    /// g = m / ‖W + scale·B·A‖ (float32, row-wise over the input dimension) and (1 − g) ⊙ bias of DoRA module
    /// <paramref name="w"/> over this projection's base weight, computed once per weights object and kept with it,
    /// without forming the [out, in] sum: ‖W_o + s·(B·A)_o‖² = ‖W_o‖² + 2s·⟨W_o, (B·A)_o⟩ + s²·‖(B·A)_o‖², where
    /// ⟨W_o, (B·A)_o⟩ = Σ_j B[o, j]·(W·Aᵀ)[o, j] and ‖(B·A)_o‖² = Σ_j (B·(A·Aᵀ))[o, j]·B[o, j]. So it reads W once
    /// for one [out, in]·[in, r] product; ‖W_o‖² depends on the base weights alone and is kept after the first DoRA module.
    /// On CPU the product runs on the native skinny kernel and the rest in plain loops (<see cref="DoraScaleCpu"/>).
    /// It touches no slot and only reads the base weights, so it may run on any thread while the engine steps: the
    /// runtime takes it off the engine loop (<see cref="LoraSlotArena.PrepareDora"/>) before a slot fill copies it.
    /// </summary>
    /// <exception cref="ArgumentException">Some g is not finite (a zero row norm, or a non-finite magnitude).</exception>
    internal DoraRowScale RowScale(LoraModuleWeights w, Func<(Tensor Weight, Tensor? Bias)> baseWeight)
    {
        if (_doraScales.TryGetValue(w, out var known))
            return known;
        using var scope = NewDisposeScope();
        var (weight, bias) = baseWeight();
        var scale = new float[Out];
        var shift = new float[Out];
        bool finite = DoraScaleCpu.Applies(weight)
            ? DoraScaleCpu.TryFill(weight, bias, new ReadOnlySpan<float>(CpuTensorMemory.Address(BaseRowNormsSquared(weight)), Out), w, scale, shift)
            : TryScaleWithTensors(w, weight, bias, scale, shift);
        if (!finite)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: DoRA scale is not finite (a zero row norm of W + scale·B·A, or a non-finite magnitude)");
        // Two threads may have computed the same module at once; both results are equal, the first one kept is returned.
        return _doraScales.GetValue(w, _ => new DoraRowScale(scale, shift));
    }

    /// <summary>Keeps <paramref name="scale"/> as <see cref="RowScale"/>'s result for <paramref name="w"/> (replacing one computed before).</summary>
    /// <exception cref="ArgumentException">As <see cref="CheckRowScale"/>.</exception>
    internal void UseRowScale(LoraModuleWeights w, DoraRowScale scale)
    {
        CheckRowScale(scale);
        _doraScales.AddOrUpdate(w, scale);
    }

    /// <summary>Throws unless <paramref name="scale"/> could be this projection's DoRA scale.</summary>
    /// <exception cref="ArgumentException">A vector is not <c>[out]</c>, or holds a value that is not finite.</exception>
    internal void CheckRowScale(DoraRowScale scale)
    {
        string module = $"layer {Layer} {LoraTargets.ModuleName(Target)}";
        if (scale.Scale.Length != Out || scale.Shift.Length != Out)
            throw new ArgumentException($"{module}: DoRA scale and shift must be [{Out}]; got [{scale.Scale.Length}] and [{scale.Shift.Length}]");
        if (!System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(scale.Scale) || !System.Numerics.Tensors.TensorPrimitives.IsFiniteAll<float>(scale.Shift))
            throw new ArgumentException($"{module}: DoRA scale or shift holds a value that is not finite");
    }

    /// <summary>‖W_o‖² <c>[out]</c> float32 on the weight's device, made by the first caller.</summary>
    private Tensor BaseRowNormsSquared(Tensor weight)
    {
        lock (_baseNormsLock)
        {
            if (_baseRowNormsSquared is null)
            {
                using var scope = NewDisposeScope();
                _baseRowNormsSquared = weight.to(ScalarType.Float32).Squared().sum(1).contiguous().DetachFromDisposeScope();   // the arena owns it
            }

            return _baseRowNormsSquared;
        }
    }

    /// <summary>The same as <see cref="DoraScaleCpu"/> in libtorch operations, for other devices and dtypes.</summary>
    private bool TryScaleWithTensors(LoraModuleWeights w, Tensor weight, Tensor? bias, Span<float> scale, Span<float> shift)
    {
        var device = weight.device;
        var a = tensor(w.A, [w.Rank, In]).to(device);
        var b = tensor(w.B, [Out, w.Rank]).to(device);
        var product = weight.to(ScalarType.Float32).matmul(a.t().contiguous());   // libtorch's GEMM takes a contiguous Aᵀ about twice as fast as the view
        var cross = b.mul(product).sum(1);
        var lora = b.matmul(a.matmul(a.t())).mul(b).sum(1);
        var norm = BaseRowNormsSquared(weight).Plus(cross.Times(2.0 * w.Scale)).PlusInPlace(lora.Times((double)w.Scale * w.Scale)).relu().sqrt();   // rounding may dip a zero norm below 0
        var g = tensor(w.Magnitude!).to(device).div(norm);
        if (!g.isfinite().all().item<bool>() || !(norm.min().item<float>() > 0))
            return false;
        g.cpu().data<float>().ToArray().CopyTo(scale);
        if (bias is null)
            shift.Clear();
        else
            g.neg().PlusInPlace(1).mul(bias.to(ScalarType.Float32)).cpu().data<float>().ToArray().CopyTo(shift);
        return true;
    }

    public void Clear(int slot)
    {
        if (Ranks[slot] > 0)
            ZeroRows(slot, 0, Ranks[slot]);
        Ranks[slot] = 0;
        Scales[slot] = 0;
        if (IsDora[slot])
        {
            using (var row = DoraScale[slot])
                row.FillWith(1);
            using (var row = DoraShift[slot])
                row.zero_();
            IsDora[slot] = false;
        }

        Version++;
        using (var scale = ScalesOnDevice[slot])
            scale.FillWith(0);
    }

    /// <summary>
    /// True when A and Bt are float32 or bfloat16 CPU memory that a fill writes directly. A libtorch copy of a module's few
    /// thousand values opens an OpenMP region (above its grain size), and a fill's ~170 of them (the team woken, then its
    /// barrier) held a cold LoRA fill on the engine loop at 15–26 ms on a 2-core VM for ~5 MB of weights.
    /// </summary>
    private bool OnCpuMemory => AAddress != 0 && A.dtype is ScalarType.Float32 or ScalarType.BFloat16;

    /// <summary>A into rows [0, rank) of the slot's A, and Bᵀ into the same rows of its Bt, rounded to the arena's dtype as libtorch rounds (nearest even).</summary>
    private void CopyIntoCpuMemory(int slot, LoraModuleWeights w)
    {
        long aStart = (long)slot * MaxRank * In, btStart = (long)slot * MaxRank * Out;
        int rank = w.Rank;
        if (A.dtype == ScalarType.BFloat16)
        {
            Bf16.FromFloat(w.A, new Span<ushort>((ushort*)AAddress + aStart, rank * In));
            var bt = new Span<ushort>((ushort*)BtAddress + btStart, rank * Out);
            for (int o = 0; o < Out; o++)
                for (int j = 0; j < rank; j++)
                    bt[j * Out + o] = Bf16.FromFloat(w.B[o * rank + j]);
        }
        else
        {
            w.A.CopyTo(new Span<float>((float*)AAddress + aStart, rank * In));
            var bt = new Span<float>((float*)BtAddress + btStart, rank * Out);
            for (int o = 0; o < Out; o++)
                for (int j = 0; j < rank; j++)
                    bt[j * Out + o] = w.B[o * rank + j];
        }
    }

    /// <summary>Rows [from, to) of a slot's A and Bt back to zero (the invariant beyond a slot's rank).</summary>
    private void ZeroRows(int slot, int from, int to)
    {
        if (OnCpuMemory)
        {
            long element = A.ElementSize;
            new Span<byte>((byte*)AAddress + ((long)slot * MaxRank + from) * In * element, checked((int)((to - from) * In * element))).Clear();
            new Span<byte>((byte*)BtAddress + ((long)slot * MaxRank + from) * Out * element, checked((int)((to - from) * Out * element))).Clear();
            return;
        }

        using (var slotA = A[slot])
        using (var rows = slotA.narrow(0, from, to - from))
            rows.zero_();
        using (var slotBt = Bt[slot])
        using (var rows = slotBt.narrow(0, from, to - from))
            rows.zero_();
    }

    public void Dispose()
    {
        A.Dispose();
        Bt.Dispose();
        ScalesOnDevice.Dispose();
        DoraScale.Dispose();
        DoraShift.Dispose();
        _baseRowNormsSquared?.Dispose();
    }
}
