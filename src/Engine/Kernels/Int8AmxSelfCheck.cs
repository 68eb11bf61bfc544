using Serving.Engine.Quantization;

namespace Serving.Engine.Kernels;

/// <summary>
/// The AMX int8 kernel on the hardware, once, before <see cref="Int8AmxNative"/> offers it: 19 rows (a chunk of 16 and a
/// short one) × 68 inputs (a run of 64 and a short run of one group) × 80 outputs (a whole block and a part of one) with a
/// bias, against the exact integer sums and the epilogue's float32 expression, bit for bit. Why: the kernel's tile code is
/// otherwise proven only under emulation on machines without AMX; a CPU that disagreed must not serve from it.
/// </summary>
internal static unsafe class Int8AmxSelfCheck
{
    private const int Rows = 19, Inputs = 68, Outputs = 80;

    /// <summary>Null when <paramref name="gemm"/> gives the expected values; else the first difference.</summary>
    public static string? Run(delegate* unmanaged[Cdecl]<byte*, float*, long, long, sbyte*, float*, int*, void*, int, void*, long, int, long, long, long, void> gemm)
    {
        var random = new Random(20261205);
        var weights = new float[Outputs * Inputs];
        var input = new float[Rows * Inputs];
        var bias = new float[Outputs];
        foreach (var values in new[] { weights, input, bias })
            for (int i = 0; i < values.Length; i++)
                values[i] = (float)(random.NextDouble() * 2 - 1);
        var w = Int8Quantizer.QuantizeRows(weights, Outputs, Inputs);
        var offset = new byte[Rows * Inputs];
        var scales = new float[Rows];
        Int8Quantizer.QuantizeInputRows(input, Rows, Inputs, offset, scales);
        var y = new float[Rows * Outputs];
        Int8AmxNative.CallOnSpans(gemm, offset, scales, Rows, w, bias, y, Outputs, 0, (Outputs + Int8Matrix.BlockRows - 1) / Int8Matrix.BlockRows);

        for (int m = 0; m < Rows; m++)
        {
            for (int n = 0; n < Outputs; n++)
            {
                int dot = 0;
                for (int k = 0; k < Inputs; k++)
                    dot += (offset[m * Inputs + k] - 128) * w.Value(n, k);
                float expected = scales[m] * w.Scales[n] * dot + bias[n];
                if (BitConverter.SingleToInt32Bits(y[m * Outputs + n]) != BitConverter.SingleToInt32Bits(expected))
                    return $"row {m}, output {n}: {y[m * Outputs + n]} instead of {expected}";
            }
        }

        return null;
    }
}
