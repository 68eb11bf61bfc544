using Serving.LoadTests.Metrics;

namespace Serving.LoadTests.Tests.Metrics;

public sealed class FullGcTriggerTests
{
    [Fact]
    public async Task InduceAsync_ThisProcess_RunsAGen2Collection()
    {
        int before = GC.CollectionCount(2);
        Assert.True(await FullGcTrigger.InduceAsync(Environment.ProcessId, CancellationToken.None));
        Assert.True(GC.CollectionCount(2) > before, "no generation-2 collection ran");
    }

    [Fact]
    public async Task InduceAsync_NoSuchProcess_ReturnsFalse()
    {
        Assert.False(await FullGcTrigger.InduceAsync(int.MaxValue - 7, CancellationToken.None));
    }
}
