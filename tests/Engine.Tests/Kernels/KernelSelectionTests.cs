using Serving.Engine.Kernels;
using static TorchSharp.torch;

namespace Serving.Engine.Tests.Kernels;

public sealed class KernelSelectionTests
{
    [Theory]
    [InlineData(ScalarType.Float32, typeof(CpuLoraKernel))]
    [InlineData(ScalarType.BFloat16, typeof(CpuLoraKernel))]
    [InlineData(ScalarType.Float16, typeof(ReferenceLoraKernel))]
    public void Select_Cpu_FastLoraKernelWhereItSupportsTheDtype(ScalarType dtype, Type expected)
    {
        var selection = KernelSelection.Select(KernelOptions.Default, dtype, CPU);

        Assert.IsType(expected, selection.Lora);
        Assert.True(selection.CpuDecodeAttention && selection.CpuElementwise && selection.FusedCpuDecode);
    }

    [Fact]
    public void Select_OffTheCpu_GatherKernelAndNoCpuKernelFamilies()
    {
        var selection = KernelSelection.Select(KernelOptions.Default, ScalarType.BFloat16, new Device(TorchSharp.DeviceType.CUDA));

        Assert.IsType<GatherLoraKernel>(selection.Lora);
        Assert.False(selection.CpuDecodeAttention || selection.CpuElementwise || selection.FusedCpuDecode);
        ((IDisposable)selection.Lora).Dispose();
    }

    [Fact]
    public void Select_OptionsGiven_TakenAsTheyAre()
    {
        var reference = new ReferenceLoraKernel();

        var selection = KernelSelection.Select(new KernelOptions { Lora = reference, CpuElementwise = false, FusedCpuDecode = false }, ScalarType.Float32, CPU);

        Assert.Same(reference, selection.Lora);
        Assert.Equal((true, false, false), (selection.CpuDecodeAttention, selection.CpuElementwise, selection.FusedCpuDecode));
    }
}
