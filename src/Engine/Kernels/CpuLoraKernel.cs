using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Serving.Engine.Lora;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// <see cref="ILoraKernel"/> in C# on the tensors' CPU memory (float32 or bfloat16 activations, float32 adapters).
/// Rows are visited adapter by adapter (<see cref="LoraBatchMapping.RowsBySlot"/>), split into one contiguous chunk
/// per core, so consecutive rows reuse the same A and Bt from cache and each adapter's weights are streamed from
/// memory about once per step:
/// <code>
/// parallel over chunks of rows (ordered by slot):
///     acc[0..out] = 0;  x32 = float(x[t])
///     for (s, w) in mapping[t]:  h[j] = Dot(A[s, j], x32)  for j &lt; r
///                                acc += (w · scale[s] · h[j]) · Bt[s, j]   for j &lt; r      (MultiplyAdd)
///     y[t, offset..] += acc
/// </code>
/// Work proportional to each slot's own rank: padding to the arena's max rank costs memory, not time.
/// </summary>
internal sealed unsafe class CpuLoraKernel : ILoraKernel
{
    public string Name => "cpu-simd";

    public static bool Supports(Tensor x, Tensor y, LoraModuleArena module) =>
        x.device.type == TorchSharp.DeviceType.CPU && module.A.device.type == TorchSharp.DeviceType.CPU
        && x.dtype == y.dtype && x.dtype is ScalarType.Float32 or ScalarType.BFloat16
        && x.is_contiguous() && y.is_contiguous();

    public void Apply(Tensor x, Tensor y, int outputOffset, LoraModuleArena module, LoraBatchMapping mapping)
    {
        if (!Supports(x, y, module))
            throw new ArgumentException("the CPU LoRA kernel needs contiguous float32/bfloat16 CPU tensors");
        var rows = mapping.RowsBySlot;
        if (rows.Count == 0)
            return;
        bool bf16 = x.dtype == ScalarType.BFloat16;
        int inF = module.In, outF = module.Out, width = (int)y.shape[1], maxRank = module.MaxRank;
        fixed (byte* xp = x.bytes)
        fixed (byte* yp = y.bytes)
        fixed (byte* ap = module.A.bytes)
        fixed (byte* bp = module.Bt.bytes)
        {
            var ctx = new Context((nint)xp, (nint)yp, (nint)ap, (nint)bp, inF, outF, width, outputOffset, maxRank, bf16, module, mapping);
            int chunks = Math.Min(Environment.ProcessorCount, rows.Count);
            long work = (long)rows.Count * (inF + outF) * Math.Max(1, module.Ranks.Max());
            if (chunks <= 1 || work < 200_000)
                RunChunk(ctx, 0, rows.Count);
            else
                Parallel.For(0, chunks, c => RunChunk(ctx, c * rows.Count / chunks, (c + 1) * rows.Count / chunks));
        }
    }

    private sealed record Context(nint X, nint Y, nint A, nint Bt, int In, int Out, int Width, int Offset, int MaxRank, bool Bf16,
        LoraModuleArena Module, LoraBatchMapping Mapping);

    private static void RunChunk(Context c, int from, int to)
    {
        var xRow = new float[c.In];
        var acc = new float[c.Out];
        var h = new float[c.MaxRank];
        var rows = c.Mapping.RowsBySlot;
        var start = c.Mapping.RowStart;
        for (int i = from; i < to; i++)
        {
            int t = rows[i];
            if (c.Bf16)
                Bf16.ToFloat(new ReadOnlySpan<ushort>((void*)(c.X + (nint)t * c.In * 2), c.In), xRow);
            else
                new ReadOnlySpan<float>((void*)(c.X + (nint)t * c.In * 4), c.In).CopyTo(xRow);
            Array.Clear(acc);
            bool any = false;
            for (int e = start[t]; e < start[t + 1]; e++)
            {
                int slot = c.Mapping.EntrySlots[e];
                int rank = c.Module.Ranks[slot];
                if (rank == 0)
                    continue;
                any = true;
                float factor = c.Mapping.EntryWeights[e] * c.Module.Scales[slot];
                float* a = (float*)c.A + (long)slot * c.MaxRank * c.In;
                float* bt = (float*)c.Bt + (long)slot * c.MaxRank * c.Out;
                for (int j = 0; j < rank; j++)
                    h[j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(a + (long)j * c.In, c.In), xRow) * factor;
                for (int j = 0; j < rank; j++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(bt + (long)j * c.Out, c.Out), h[j], acc, acc);
            }

            if (any)
                AddInto(c, t, acc);
        }
    }

    private static void AddInto(Context c, int t, float[] acc)
    {
        long at = (long)t * c.Width + c.Offset;
        if (!c.Bf16)
        {
            var y = new Span<float>((float*)c.Y + at, c.Out);
            TensorPrimitives.Add(y, acc, y);
            return;
        }

        var yb = new Span<ushort>((ushort*)c.Y + at, c.Out);
        for (int o = 0; o < c.Out; o++)
            yb[o] = Bf16.FromFloat(BitConverter.UInt32BitsToSingle((uint)yb[o] << 16) + acc[o]);
    }
}
