using Serving.Contracts.Lora;
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
        if (device.type == TorchSharp.DeviceType.CPU)
        {
            AAddress = (nint)Runtime.CpuTensorMemory.Address(A);
            BtAddress = (nint)Runtime.CpuTensorMemory.Address(Bt);
        }
    }

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
    /// Where <see cref="A"/> and <see cref="Bt"/> start in CPU memory (0 on other devices), read once: the CPU LoRA kernel
    /// runs between GEMMs, where every native call on a tensor costs cache misses.
    /// </summary>
    public nint AAddress { get; }

    /// <inheritdoc cref="AAddress"/>
    public nint BtAddress { get; }

    public long Bytes => (A.NumberOfElements + Bt.NumberOfElements) * A.ElementSize;

    /// <summary>Changes with every <see cref="Load"/> and <see cref="Clear"/>: a kernel's derived copy of these weights is current while it matches.</summary>
    public long Version { get; private set; }

    public void Load(int slot, LoraModuleWeights w)
    {
        if (w.Rank > MaxRank)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: rank {w.Rank} exceeds the configured max rank {MaxRank}");
        if (w.A.Length != w.Rank * In || w.B.Length != Out * w.Rank)
            throw new ArgumentException($"layer {Layer} {LoraTargets.ModuleName(Target)}: expected A [{w.Rank}, {In}] and B [{Out}, {w.Rank}]");
        // Every tensor here is owned and disposed, none left to the finalizer: a temporary that is only the receiver of a
        // native call (A[slot].narrow(...)) can be finalized during that call, freeing the native tensor libtorch is reading.
        if (Ranks[slot] > w.Rank)
            ZeroRows(slot, w.Rank, Ranks[slot]);
        using (var a = tensor(w.A, [w.Rank, In]))
        using (var slotA = A[slot])
        using (var target = slotA.narrow(0, 0, w.Rank))
            target.copy_(a);
        using (var b = tensor(w.B, [Out, w.Rank]))
        using (var bt = b.t())
        using (var slotBt = Bt[slot])
        using (var target = slotBt.narrow(0, 0, w.Rank))
            target.copy_(bt);
        Ranks[slot] = w.Rank;
        Scales[slot] = w.Scale;
        Version++;
        using (var scale = ScalesOnDevice[slot])
            scale.FillWith(w.Scale);
    }

    public void Clear(int slot)
    {
        if (Ranks[slot] > 0)
            ZeroRows(slot, 0, Ranks[slot]);
        Ranks[slot] = 0;
        Scales[slot] = 0;
        Version++;
        using (var scale = ScalesOnDevice[slot])
            scale.FillWith(0);
    }

    /// <summary>Rows [from, to) of a slot's A and Bt back to zero (the invariant beyond a slot's rank).</summary>
    private void ZeroRows(int slot, int from, int to)
    {
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
    }
}
