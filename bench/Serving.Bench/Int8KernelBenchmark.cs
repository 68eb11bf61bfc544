using System.Diagnostics;
using Serving.Engine.Kernels;
using Serving.Engine.Quantization;
using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Bench;

/// <summary>
/// The int8 projection kernel (VNNI, or AMX from Int8AmxNative.MinRows rows where present) against the bf16 GEMV kernel on the same weight (the bench preset's seven projections of
/// all eight layers stacked: 90 M weights, so the weight streams from memory as in a decode step), for 1 and 4 input rows
/// (decode), 8 and 16 (batched decode) and 64 and 256 (prefill chunks, where bf16 takes libtorch's GEMM as the model does),
/// the time to read each form's bytes at the bandwidth measured in the same run, and the int8 kernel's multiply-add rate
/// (on an AMX host, run it with <c>SERVING_INT8_AMX=0</c> and without to compare the two int8 kernels). Calls alternate so
/// drift cancels.
/// </summary>
internal sealed class Int8KernelBenchmark(int iterations)
{
    private const int Inputs = 1024, Outputs = 88_000;

    public unsafe BenchReport Run()
    {
        manual_seed(1);
        using var w32 = randn(Outputs, Inputs).TimesInPlace(0.02);
        using var wBf16 = w32.to(ScalarType.BFloat16);
        var int8 = Int8Quantizer.QuantizeRows(w32.data<float>().ToArray(), Outputs, Inputs);
        var report = new BenchReport($"int8 ({Int8Linear.Kernel}) vs bf16 ({(GemvNative.IsAvailable ? "GEMV kernel" : "libtorch linear")}): [{Outputs}, {Inputs}] weight, CPU", ["1 row", "4 rows", "8 rows", "16 rows", "64 rows", "256 rows"]);
        report.Context("iterations", iterations);
        report.Context("int8_kernel", Int8Linear.Kernel);
        var results = new[] { 1, 4, 8, 16, 64, 256 }.Select(rows => Measure(rows, wBf16, int8)).ToList();
        foreach (string row in results[0].Keys)
            report.Add(row, row.Contains("ratio", StringComparison.Ordinal) || row.Contains("×", StringComparison.Ordinal) ? "x" : row.Contains("GB/s", StringComparison.Ordinal) ? "GB/s" : row.Contains("G/s", StringComparison.Ordinal) ? "G/s" : "ms",
                results.Select(r => (double?)r[row]).ToArray());
        return report;
    }

    private unsafe Dictionary<string, double> Measure(int rows, Tensor wBf16, Int8Matrix int8)
    {
        using var x = randn(rows, Inputs);
        using var xBf16 = x.to(ScalarType.BFloat16);
        using var yBf16 = empty(rows, Outputs, ScalarType.BFloat16);
        var y = new float[rows * Outputs];
        var offset = new byte[rows * Inputs];
        var scales = new float[rows];
        var input = x.data<float>().ToArray();
        nint pw = CpuTensorMemory.AddressOf(wBf16), px = CpuTensorMemory.AddressOf(xBf16), py = CpuTensorMemory.AddressOf(yBf16);
        var bf16Times = new List<double>();
        var int8Times = new List<double>();
        var readBf16 = new List<double>();
        for (int i = 0; i < iterations + 2; i++)
        {
            var clock = Stopwatch.StartNew();
            if (GemvNative.IsAvailable && rows <= GemvNative.MaxRows)
                GemvNative.Bf16(px, rows, Inputs, pw, 0, Outputs, py, Outputs, float32Output: false);
            else
                nn.functional.linear(xBf16, wBf16).Dispose();
            double b = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            fixed (float* pin = input)
            fixed (float* pout = y)
                Int8Linear.Apply(int8, pin, false, rows, null, pout, Outputs, float32Output: true);
            double q = clock.Elapsed.TotalMilliseconds;
            clock.Restart();
            if (GemvNative.IsAvailable)
                GemvNative.Read(pw, (long)Outputs * Inputs * 2);
            double r = clock.Elapsed.TotalMilliseconds;
            if (i < 2)
                continue;
            bf16Times.Add(b);
            int8Times.Add(q);
            readBf16.Add(r);
        }

        // Without the native read probe, two .NET threads stream a buffer of twice the weight's bytes instead.
        double bandwidth = GemvNative.IsAvailable ? (double)Outputs * Inputs * 2 / (Stats.Median(readBf16) / 1000) / 1e9
            : Int8ModelBenchmark.ReadBandwidth(4L * Outputs * Inputs) / 1e9;
        double int8ReadMs = int8.Bytes / (bandwidth * 1e9) * 1000;
        return new Dictionary<string, double>
        {
            ["bf16 GEMV (p50)"] = Stats.Median(bf16Times),
            ["int8 GEMV incl. input quantization (p50)"] = Stats.Median(int8Times),
            ["read bandwidth, GB/s"] = bandwidth,
            ["int8 / bf16 ratio, median of pairs"] = Stats.Median(int8Times.Zip(bf16Times, (a, b) => a / b)),
            ["int8 time / time to read its bytes (×)"] = Stats.Median(int8Times) / int8ReadMs,
            ["int8 multiply-adds per second, all cores (G/s)"] = (double)rows * Outputs * Inputs / (Stats.Median(int8Times) / 1000) / 1e9,
        };
    }
}
