using Serving.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// A bfloat16 projection weight, logically <c>W [N, K]</c> as HF stores it, held only in the AMX tile layout of
/// <c>serving_amx.c</c> (one 1 KiB tile per 16 outputs × 32 inputs, pairs of inputs interleaved, N and K padded to 32):
/// reordered once at load instead of on every call, as libtorch's oneDNN path does. Same bytes as the plain weight plus
/// the padding; the plain tensor is not kept.
/// <code>
/// Linear:  y[m, n] = bf16( Σ_k x[m, k] · W[n, k] + bias[n] )     float32 sums, round to nearest even
/// Rows:    out[r, :] = W[ids[r], :]                               (embedding lookups of a tied lm_head)
/// </code>
/// </summary>
public sealed unsafe class AmxPackedWeight : IDisposable
{
    /// <summary>Output blocks of 32 a thread takes at once; fewer blocks than threads × this run on fewer threads.</summary>
    private const int BlocksPerPart = 4;

    private readonly Tensor _packed; // [N rounded up to 32 · K rounded up to 32] bf16, CPU
    private readonly ushort* _address; // _packed's memory: a CPU tensor's storage never moves while it lives

    private AmxPackedWeight(Tensor packed, long outputs, long inputs)
    {
        _packed = packed;
        _address = (ushort*)Runtime.CpuTensorMemory.Address(packed);
        Outputs = outputs;
        Inputs = inputs;
    }

    /// <summary>N, the number of outputs (rows of the logical weight).</summary>
    public long Outputs { get; }

    /// <summary>K, the number of inputs.</summary>
    public long Inputs { get; }

    /// <summary>Bytes held, padding included.</summary>
    public long Bytes => _packed.NumberOfElements * 2;

    /// <summary>True for a 2-D bf16 tensor on the CPU in a process where <see cref="AmxNative.IsAvailable"/>.</summary>
    public static bool Supports(Tensor w) =>
        AmxNative.IsAvailable && w.device_type == DeviceType.CPU && w.dtype == ScalarType.BFloat16 && w.dim() == 2;

    /// <summary>
    /// Packs <paramref name="w"/> <c>[N, K]</c> bf16 (CPU) and takes ownership of it: when N and K are multiples of 32 (real
    /// checkpoints' shapes) the packing is done in place in its memory, so loading never holds two copies; otherwise the
    /// packed copy is allocated and <paramref name="w"/> is disposed.
    /// </summary>
    public static AmxPackedWeight Pack(Tensor w)
    {
        if (!Supports(w))
            throw new ArgumentException($"AMX packing needs a 2-D bfloat16 CPU tensor in a process with AMX; got [{string.Join(", ", w.shape)}] {w.dtype} on {w.device}");
        long n = w.size(0), k = w.size(1);
        bool inPlace = n % 32 == 0 && k % 32 == 0 && w.is_contiguous();
        var source = w.contiguous();
        // The packed tensor lives as long as this weight, whatever dispose scope packs it (gpt-oss packs each expert in one).
        var packed = (inPlace ? source.view(-1) : empty(AmxNative.PackedElements(n, k), ScalarType.BFloat16)).DetachFromDisposeScope();
        try
        {
            long blocks = (n + 31) / 32;
            int parts = (int)Math.Min(OpenMpTeam.Threads, Math.Max(1, blocks / 8));
            int failures = 0;
            fixed (byte* src = source.bytes)
            fixed (byte* dst = packed.bytes)
            {
                ushort* s = (ushort*)src, d = (ushort*)dst;
                OpenMpTeam.For(parts, p =>
                {
                    if (AmxNative.Pack(s, n, k, d, blocks * p / parts, blocks * (p + 1) / parts) != 0)
                        Interlocked.Increment(ref failures);
                });
            }
            if (failures != 0)
                throw new OutOfMemoryException($"no memory for a {32 * k * 2}-byte packing buffer");
        }
        catch
        {
            packed.Dispose();
            source.Dispose();
            w.Dispose();   // owned either way; after a partial in-place packing its contents are gone anyway
            throw;
        }
        source.Dispose();
        w.Dispose();
        return new AmxPackedWeight(packed, n, k);
    }

    /// <summary>
    /// x <c>[M, K]</c> bf16 → <c>[M, N]</c> bf16; <paramref name="bias"/> <c>[N]</c> bf16 is added before rounding. With
    /// <paramref name="float32Output"/> the same bf16-rounded values come back as float32 (a bf16 linear and a cast, in one pass).
    /// </summary>
    public Tensor Linear(Tensor x, Tensor? bias = null, bool float32Output = false)
    {
        if (x.dim() != 2 || x.size(1) != Inputs || x.dtype != ScalarType.BFloat16 || x.device_type != DeviceType.CPU)
            throw new ArgumentException($"input [{string.Join(", ", x.shape)}] {x.dtype} does not fit a [{Outputs}, {Inputs}] bf16 weight");
        if (bias is not null && (bias.dim() != 1 || bias.size(0) != Outputs || bias.dtype != ScalarType.BFloat16 || !bias.is_contiguous()))
            throw new ArgumentException($"bias [{string.Join(", ", bias.shape)}] {bias.dtype} does not fit {Outputs} bf16 outputs");
        long m = x.size(0), k = Inputs, n = Outputs;
        var y = empty(m, n, float32Output ? ScalarType.Float32 : ScalarType.BFloat16);
        if (m == 0)
            return y;
        using var contiguous = x.contiguous();
        // Whole 32 × 32 input tiles are loaded, so an input whose rows or columns are not multiples of 32 is padded.
        bool padded = m % 32 != 0 || k % 32 != 0;
        using var input = padded ? empty((m + 31) / 32 * 32 * ((k + 31) / 32 * 32), ScalarType.BFloat16) : null;
        fixed (byte* xp = contiguous.bytes)
        fixed (byte* ip = padded ? input!.bytes : default)
        fixed (byte* bp = bias is null ? default : bias.bytes)
        fixed (byte* yp = y.bytes)
        {
            ushort* a = padded ? (ushort*)ip : (ushort*)xp;
            if (padded)
                AmxNative.PadInput((ushort*)xp, m, k, a);
            Linear(a, m, (ushort*)bp, yp, float32Output);
        }
        return y;
    }

    /// <summary>
    /// <see cref="Linear(Tensor, Tensor?, bool)"/> on raw memory, with no libtorch call (the CPU decode path runs it between
    /// element-wise kernels): <paramref name="x"/> holds ⌈M/32⌉·32 readable rows of ⌈K/32⌉·32 bf16, the columns past K zero
    /// (rows past M may hold anything: their sums are computed and dropped); <paramref name="y"/> receives <c>[M, N]</c> bf16,
    /// or float32 with <paramref name="float32Output"/>; <paramref name="bias"/> <c>[N]</c> bf16 or null.
    /// </summary>
    public void Linear(ushort* x, long m, ushort* bias, void* y, bool float32Output)
    {
        long n = Outputs, k = Inputs, blocks = (n + 31) / 32;
        int parts = (int)Math.Min(OpenMpTeam.Threads, Math.Max(1, blocks / BlocksPerPart));
        ushort* w = _address;
        int f32 = float32Output ? 1 : 0;
        OpenMpTeam.For(parts, new LinearParts(x, m, k, w, n, bias, y, f32, blocks, parts));
    }

    /// <summary>Part p: output blocks [blocks·p / parts, blocks·(p + 1) / parts).</summary>
    private readonly struct LinearParts(ushort* x, long m, long k, ushort* w, long n, ushort* bias, void* y, int f32, long blocks, int parts) : IParallelPart
    {
        public void Run(int p) => AmxNative.Linear(x, m, k, w, n, bias, y, f32, blocks * p / parts, blocks * (p + 1) / parts);
    }

    /// <summary>Rows <paramref name="ids"/> <c>[R]</c> int64 of the logical weight → <c>[R, K]</c> bf16.</summary>
    public Tensor Rows(Tensor ids)
    {
        using var index = ids.to(ScalarType.Int64).contiguous();
        long count = index.size(0);
        var output = empty(count, Inputs, ScalarType.BFloat16);
        fixed (byte* ip = index.bytes)
        fixed (byte* op = output.bytes)
        {
            long* idp = (long*)ip;
            for (long r = 0; r < count; r++)
                if ((ulong)idp[r] >= (ulong)Outputs)
                    throw new ArgumentOutOfRangeException(nameof(ids), $"row {idp[r]} is outside [0, {Outputs})");
            AmxNative.GatherRows(_address, Outputs, Inputs, idp, count, (ushort*)op);
        }
        return output;
    }

    /// <summary>The logical <c>[N, K]</c> weight in plain layout (tests); costs a full copy.</summary>
    public Tensor Unpack() => Rows(TorchScalars.Range(Outputs, ScalarType.Int64));

    public void Dispose() => _packed.Dispose();
}
