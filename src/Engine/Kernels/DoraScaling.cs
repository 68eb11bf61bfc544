using Serving.Engine.Lora;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Kernels;

/// <summary>
/// DoRA's per-row output scale, after a fused output's base projection and LoRA updates are in <c>y</c>:
/// <code>
/// for each projection p (columns from offset_p, as <see cref="ILoraKernel"/>), each slot s that is DoRA for p,
/// each row t of s's group:
///     y[t, offset_p + o] = g_p[s, o] · y[t, offset_p + o] + shift_p[s, o]      (float32; shift = (1 − g) ⊙ bias)
/// </code>
/// so a DoRA row costs a LoRA row plus one <c>[out]</c> multiply-add per projection, and base and plain-LoRA rows are not
/// touched. A row scaled here must belong to one group only (DoRA does not mix: the runtime refuses mixtures with a DoRA
/// adapter). On CPU it runs on raw memory; elsewhere as gathered libtorch ops per (projection, DoRA slot).
/// </summary>
internal static unsafe class DoraScaling
{
    /// <summary>Whether any of <paramref name="modules"/> is DoRA for a slot the step's rows use.</summary>
    public static bool Needed(IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        // Indexed loops: foreach over the interfaces would allocate an enumerator on every projection of a decode step.
        var groups = mapping.Groups;
        for (int i = 0; i < modules.Count; i++)
            for (int j = 0; j < groups.Count; j++)
                if (modules[i].IsDora[groups[j].Slot])
                    return true;
        return false;
    }

    /// <param name="y">The fused output <c>[T, width]</c>, its projections from column 0.</param>
    /// <param name="modules">The fused output's arenas, in column order.</param>
    /// <param name="mapping">The step's rows and their slots.</param>
    public static void Apply(Tensor y, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        if (!Needed(modules, mapping))
            return;
        if (y.device.type == TorchSharp.DeviceType.CPU && y.is_contiguous() && y.dtype is ScalarType.Float32 or ScalarType.BFloat16)
        {
            ApplyRaw((nint)CpuTensorMemory.Address(y), (int)y.size(1), y.dtype == ScalarType.BFloat16, modules, mapping);
            return;
        }

        using var scope = NewDisposeScope();
        int offset = 0;
        foreach (var m in modules)
        {
            var columns = y.narrow(1, offset, m.Out);
            foreach (var g in mapping.Groups)
            {
                if (!m.IsDora[g.Slot])
                    continue;
                var rows = tensor(g.Rows.Select(r => (long)r).ToArray(), ScalarType.Int64, y.device);
                var scaled = columns.index_select(0, rows).to(ScalarType.Float32).TimesInPlace(m.DoraScale[g.Slot]).PlusInPlace(m.DoraShift[g.Slot]);
                columns.IndexCopyInPlace(0, rows, scaled.to(y.dtype));
            }

            offset += m.Out;
        }
    }

    [ThreadStatic] private static float[]? _widened;

    /// <summary>A per-thread float32 row of <paramref name="length"/>, reused across steps (this runs on the step's hot path).</summary>
    private static Span<float> Widened(int length)
    {
        if (_widened is null || _widened.Length < length)
            _widened = new float[length];
        return _widened.AsSpan(0, length);
    }

    /// <summary><see cref="Apply"/> on CPU memory: <paramref name="y"/> rows of <paramref name="width"/> elements, bfloat16 or float32.</summary>
    public static void ApplyRaw(nint y, int width, bool bf16, IReadOnlyList<LoraModuleArena> modules, LoraBatchMapping mapping)
    {
        if (!Needed(modules, mapping))
            return;
        int offset = 0;
        foreach (var m in modules)
        {
            var widened = bf16 ? Widened(m.Out) : default;
            foreach (var g in mapping.Groups)
            {
                if (!m.IsDora[g.Slot])
                    continue;
                var scale = new ReadOnlySpan<float>((float*)m.DoraScaleAddress + (long)g.Slot * m.Out, m.Out);
                var shift = new ReadOnlySpan<float>((float*)m.DoraShiftAddress + (long)g.Slot * m.Out, m.Out);
                foreach (int row in g.Rows)
                {
                    long at = (long)row * width + offset;
                    if (bf16)
                    {
                        var values = new Span<ushort>((ushort*)y + at, m.Out);
                        Bf16.ToFloat(values, widened);
                        System.Numerics.Tensors.TensorPrimitives.FusedMultiplyAdd(widened, scale, shift, widened);
                        Bf16.FromFloat(widened, values);
                    }
                    else
                    {
                        var values = new Span<float>((float*)y + at, m.Out);
                        System.Numerics.Tensors.TensorPrimitives.FusedMultiplyAdd(values, scale, shift, values);
                    }
                }
            }

            offset += m.Out;
        }
    }
}
