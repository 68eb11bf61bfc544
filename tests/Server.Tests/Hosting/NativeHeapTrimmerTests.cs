using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Serving.Engine.Runtime;
using Serving.Runtime.Hosting;
using Serving.Server.Hosting;

namespace Serving.Server.Tests.Hosting;

public sealed class NativeHeapTrimmerTests
{
    [Fact]
    public async Task ExecuteAsync_IntervalsPass_TrimsOncePerInterval()
    {
        if (!NativeHeap.CanTrim)
            return;
        var time = new FakeTimeProvider();
        using var trimmer = new NativeHeapTrimmer(Options.Create(new ModelOptions { NativeHeapTrimSeconds = 10 }), time,
            NullLogger<NativeHeapTrimmer>.Instance);
        await trimmer.StartAsync(CancellationToken.None);
        try
        {
            time.Advance(TimeSpan.FromSeconds(9));
            await Task.Delay(100);
            Assert.Equal(0, trimmer.Trims);
            for (int expected = 1; expected <= 3; expected++)
            {
                time.Advance(TimeSpan.FromSeconds(10));
                await WaitFor(() => trimmer.Trims >= expected);
                Assert.Equal(expected, trimmer.Trims);
            }
        }
        finally
        {
            await trimmer.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task ExecuteAsync_IntervalZero_NeverTrims()
    {
        var time = new FakeTimeProvider();
        using var trimmer = new NativeHeapTrimmer(Options.Create(new ModelOptions { NativeHeapTrimSeconds = 0 }), time,
            NullLogger<NativeHeapTrimmer>.Instance);
        await trimmer.StartAsync(CancellationToken.None);
        time.Advance(TimeSpan.FromHours(1));
        await Task.Delay(100);
        await trimmer.StopAsync(CancellationToken.None);
        Assert.Equal(0, trimmer.Trims);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(double.NaN)]
    [InlineData(100_000)]
    public void Validate_BadInterval_NamesTheKey(double seconds)
    {
        var result = new ModelOptionsValidator().Validate(null, new ModelOptions { NativeHeapTrimSeconds = seconds });
        Assert.True(result.Failed);
        Assert.Contains("Serving:Model:NativeHeapTrimSeconds", result.FailureMessage, StringComparison.Ordinal);
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline)
            await Task.Delay(10);
    }
}
