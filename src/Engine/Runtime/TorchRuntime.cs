using TorchSharp;
using static TorchSharp.torch;

namespace Serving.Engine.Runtime;

/// <summary>Device and dtype resolution. Nothing here assumes CPU: the device always comes from configuration.</summary>
public static class TorchRuntime
{
    private static readonly Lazy<bool> CpuHasFastBf16 = new(DetectFastBf16);

    public static Device ParseDevice(string text)
    {
        string t = text.Trim().ToLowerInvariant();
        if (t == "cpu")
            return CPU;
        if (t == "cuda" || t.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new ArgumentException($"device '{text}' requested but CUDA is not available (build with -p:TorchBackend=cuda on a machine with a GPU)");
            return new Device(t);
        }

        throw new ArgumentException($"device '{text}' is not supported (expected cpu, cuda or cuda:N)");
    }

    public static ComputeDtype ParseDtype(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => ComputeDtype.Auto,
        "float32" or "fp32" or "f32" => ComputeDtype.Float32,
        "bfloat16" or "bf16" => ComputeDtype.BFloat16,
        "float16" or "fp16" or "f16" or "half" => ComputeDtype.Float16,
        _ => throw new ArgumentException($"dtype '{text}' is not supported (expected auto, float32, bfloat16 or float16)"),
    };

    /// <summary>
    /// auto: bfloat16 on CUDA and on CPUs with AVX512-BF16 or AMX (where libtorch's bf16 GEMM is over 4× the float32
    /// one), float32 elsewhere. float16 is never chosen on CPU: its GEMM is the slowest of the three there.
    /// </summary>
    public static ScalarType ResolveDtype(ComputeDtype dtype, Device device) => dtype switch
    {
        ComputeDtype.Float32 => ScalarType.Float32,
        ComputeDtype.BFloat16 => ScalarType.BFloat16,
        ComputeDtype.Float16 => ScalarType.Float16,
        _ when device.type == DeviceType.CUDA => ScalarType.BFloat16,
        _ => CpuHasFastBf16.Value ? ScalarType.BFloat16 : ScalarType.Float32,
    };

    private static bool DetectFastBf16()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo"))
                return false;
            foreach (string line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal))
                    continue;
                var flags = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
            }
        }
        catch (IOException)
        {
        }

        return false;
    }
}
