using System.Collections.Concurrent;
using Serving.Engine.Kernels;
using TorchSharp;

namespace Serving.Engine.Tests.Kernels;

public sealed class OpenMpTeamTests
{
    public OpenMpTeamTests()
    {
        // libtorch (and with it the OpenMP runtime) is loaded by the first tensor.
        using var warm = torch.ones(64, 64).matmul(torch.ones(64, 64));
    }

    [Fact]
    public void OpenMpTeam_OnLinuxWithLibtorch_FindsTheOpenMpRuntimeLibtorchLoaded()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("SERVING_KERNEL_THREADS") == "dotnet")
            return;
        Assert.True(OpenMpTeam.IsAvailable, "no OpenMP runtime found among the loaded libraries");
        Assert.Contains("omp", Path.GetFileName(OpenMpTeam.LibraryPath!), StringComparison.Ordinal);
        Assert.Equal(torch.get_num_threads(), OpenMpTeam.Threads);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(100)]
    public void For_AnyPartCount_RunsEveryPartExactlyOnce(int parts)
    {
        var counts = new int[parts];
        OpenMpTeam.For(parts, p => Interlocked.Increment(ref counts[p]));
        Assert.All(counts, c => Assert.Equal(1, c));
    }

    [Fact]
    public void For_TwoParts_RunOnAsManyThreadsAsTheTeamHas() => AssertTwoPartsRunTogether();

    /// <summary>Two parts of one region each wait for the other to start: they must run on two threads at once.</summary>
    internal static void AssertTwoPartsRunTogether()
    {
        var threads = new ConcurrentDictionary<int, bool>();
        using var bothStarted = new CountdownEvent(Math.Min(2, OpenMpTeam.Threads));
        OpenMpTeam.For(2, _ =>
        {
            threads[Environment.CurrentManagedThreadId] = true;
            bothStarted.Signal();
            Assert.True(bothStarted.Wait(TimeSpan.FromSeconds(10)), "the parts did not run concurrently");
        });
        Assert.Equal(Math.Min(2, OpenMpTeam.Threads), threads.Count);
    }

    [Fact]
    public void For_PartThrows_ExceptionReachesTheCallerAndOtherPartsStillRun()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => OpenMpTeam.For(8, p =>
        {
            Interlocked.Increment(ref ran);
            if (p == 3)
                throw new InvalidOperationException("part 3 failed");
        }));
        Assert.Equal("part 3 failed", e.Message);
        Assert.Equal(8, ran);
    }

    [Fact]
    public void Alone_RegionsInside_RunEveryPartOnTheCallingThreadAndRestoreTheTeamAfter()
    {
        var inside = new ConcurrentDictionary<int, bool>();
        int caller = Environment.CurrentManagedThreadId;
        OpenMpTeam.Alone(() => OpenMpTeam.For(16, _ => inside[Environment.CurrentManagedThreadId] = true));
        Assert.Equal([caller], inside.Keys);

        AssertTwoPartsRunTogether();
    }
}
