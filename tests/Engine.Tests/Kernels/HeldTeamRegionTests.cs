using Serving.Engine.Kernels;
using TorchSharp;

namespace Serving.Engine.Tests.Kernels;

/// <summary>
/// A held region (<see cref="HeldTeamRegion"/>): parallel calls made by its body go to the team already in the region,
/// every part runs once per call, parts run on the team's threads at once, and failures (of a part, of the body) reach the
/// caller with the region ended and the team usable after. Where no region can be held (no OpenMP runtime, no native
/// library, one thread) the body runs plainly and the same assertions hold.
/// </summary>
public sealed class HeldTeamRegionTests
{
    public HeldTeamRegionTests()
    {
        // libtorch (and with it the OpenMP runtime) is loaded by the first tensor.
        using var warm = torch.ones(64, 64).matmul(torch.ones(64, 64));
    }

    private static bool Holds => HeldTeamRegion.IsAvailable && OpenMpTeam.Threads > 1;

    private readonly struct ActionBody(Action action) : IHeldBody
    {
        public void Run() => action();
    }

    private static void Held(Action action)
    {
        var body = new ActionBody(action);
        HeldTeamRegion.Run(ref body);
    }

    [Fact]
    public void Run_ManyCallsOfManyParts_EveryPartRunsOncePerCall()
    {
        const int calls = 300, parts = 37;
        var counts = new int[parts];
        bool held = false;
        Held(() =>
        {
            held = HeldTeamRegion.Holding;
            for (int c = 0; c < calls; c++)
                OpenMpTeam.For(parts, p => Interlocked.Increment(ref counts[p]));
        });
        Assert.All(counts, n => Assert.Equal(calls, n));
        Assert.Equal(Holds, held);
        Assert.False(HeldTeamRegion.Holding);
    }

    [Fact]
    public void Run_TwoPartsOfACall_RunOnAsManyThreadsAsTheTeamHas() => Held(() =>
    {
        for (int c = 0; c < 20; c++)
            OpenMpTeamTests.AssertTwoPartsRunTogether();
    });

    [Fact]
    public void Run_PartThrows_ExceptionReachesTheCallAndLaterCallsStillRun()
    {
        int ran = 0, after = 0;
        Exception? caught = null;
        Held(() =>
        {
            caught = Record.Exception(() => OpenMpTeam.For(8, p =>
            {
                Interlocked.Increment(ref ran);
                if (p == 5)
                    throw new InvalidOperationException("part 5 failed");
            }));
            OpenMpTeam.For(8, _ => Interlocked.Increment(ref after));
        });
        Assert.Equal("part 5 failed", Assert.IsType<InvalidOperationException>(caught).Message);
        Assert.Equal(8, ran);
        Assert.Equal(8, after);
    }

    [Fact]
    public void Run_BodyThrows_ExceptionRethrownAndTheTeamServesAfter()
    {
        int before = 0;
        var e = Assert.Throws<ArgumentException>(() => Held(() =>
        {
            OpenMpTeam.For(4, _ => Interlocked.Increment(ref before));
            throw new ArgumentException("the body failed");
        }));
        Assert.Equal("the body failed", e.Message);
        Assert.Equal(4, before);
        Assert.False(HeldTeamRegion.Holding);

        var counts = new int[16];
        Held(() => OpenMpTeam.For(16, p => Interlocked.Increment(ref counts[p])));
        Assert.All(counts, n => Assert.Equal(1, n));
    }

    [Fact]
    public void Run_CallInsideAPartOrAHeldBody_RunsEveryNestedPart()
    {
        var inner = new int[6 * 5];
        int nestedBody = 0;
        Held(() =>
        {
            OpenMpTeam.For(6, outer => OpenMpTeam.For(5, p => Interlocked.Increment(ref inner[outer * 5 + p])));
            Held(() => OpenMpTeam.For(3, _ => Interlocked.Increment(ref nestedBody)));
        });
        Assert.All(inner, n => Assert.Equal(1, n));
        Assert.Equal(3, nestedBody);
    }
}
