using Serving.Runtime.Hosting;

namespace Serving.Server.Tests.Hosting;

public sealed class ModelOptionsValidatorTests
{
    /// <summary>The weight formats a CPU kernel runs are refused on a GPU at start-up, naming the key and the device.</summary>
    [Theory]
    [InlineData("int8", "cuda")]
    [InlineData("mxfp4", "cuda:1")]
    public void Validate_CpuWeightFormatOnAGpu_RefusedNamingIt(string quantization, string device)
    {
        var result = new ModelOptionsValidator().Validate(null, new ModelOptions { Quantization = quantization, Device = device });

        Assert.True(result.Failed);
        Assert.Contains($"Serving:Model:Quantization {quantization}", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains(device, result.FailureMessage, StringComparison.Ordinal);
        Assert.True(new ModelOptionsValidator().Validate(null, new ModelOptions { Quantization = quantization, Device = "cpu" }).Succeeded);
    }
}
