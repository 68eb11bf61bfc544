using Serving.Engine.Runtime;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Configuration;

public sealed class TorchRuntimeTests
{
    [Theory]
    [InlineData("auto", "Auto")]
    [InlineData("float32", "Float32")]
    [InlineData("BF16", "BFloat16")]
    [InlineData("float16", "Float16")]
    public void ParseDtype_KnownNames(string text, string expected) => Assert.Equal(Enum.Parse<ComputeDtype>(expected), TorchRuntime.ParseDtype(text));

    [Fact]
    public void ParseDtype_Unknown_ThrowsNamingIt() => Assert.Contains("int4", Assert.Throws<ArgumentException>(() => TorchRuntime.ParseDtype("int4")).Message);

    [Fact]
    public void ParseDevice_Unknown_Throws() => Assert.Throws<ArgumentException>(() => TorchRuntime.ParseDevice("tpu"));

    [Fact]
    public void ResolveDtype_AutoOnCpu_IsBf16OnlyWithHardwareSupport()
    {
        bool fastBf16 = File.ReadLines("/proc/cpuinfo").Any(l => l.StartsWith("flags", StringComparison.Ordinal) && (l.Contains(" avx512_bf16") || l.Contains(" amx_bf16")));
        Assert.Equal(fastBf16 ? ScalarType.BFloat16 : ScalarType.Float32, TorchRuntime.ResolveDtype(ComputeDtype.Auto, CPU));
        Assert.Equal(ScalarType.Float32, TorchRuntime.ResolveDtype(ComputeDtype.Float32, CPU));
    }
}
