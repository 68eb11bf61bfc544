using System.Buffers;
using System.Numerics.Tensors;

namespace Serving.Engine.Kernels;

/// <summary>
/// Multiplies part of each row by a constant on raw memory: Granite's multipliers on the fused decode path, the same
/// arithmetic as libtorch's <c>mul_</c> on the per-op path (and PyTorch's in HF's forward), so the two paths agree bit for
/// bit: float32 maths, the factor in the tensor's dtype (a bfloat16 tensor's factor rounded to bfloat16 first, as libtorch
/// takes a scalar), a bfloat16 result rounded to nearest even once.
/// <code>x[r, 0..width) *= factor      for r &lt; rows, rows rowStride elements apart</code>
/// </summary>
internal static unsafe class RowScaling
{
    public static void Apply(byte* x, int rows, int rowStride, int width, float factor, bool bf16)
    {
        if (!bf16)
        {
            for (int r = 0; r < rows; r++)
            {
                var row = new Span<float>((float*)x + (long)r * rowStride, width);
                TensorPrimitives.Multiply(row, factor, row);
            }

            return;
        }

        factor = BitConverter.UInt32BitsToSingle((uint)Bf16.FromFloat(factor) << 16);
        float[] buffer = ArrayPool<float>.Shared.Rent(width);
        try
        {
            var values = buffer.AsSpan(0, width);
            for (int r = 0; r < rows; r++)
            {
                var row = new Span<ushort>((ushort*)x + (long)r * rowStride, width);
                Bf16.ToFloat(row, values);
                TensorPrimitives.Multiply(values, factor, values);
                Bf16.FromFloat(values, row);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }
}
