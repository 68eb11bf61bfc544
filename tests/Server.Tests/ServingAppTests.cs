using Microsoft.AspNetCore.Http;

namespace Serving.Server.Tests;

/// <summary>
/// The REST handlers' guard around client departures: Kestrel can fail an I/O call on a reset connection before it
/// cancels RequestAborted, and such a cancellation must not reach the error log as the server's own failure.
/// </summary>
public sealed class ServingAppTests
{
    [Fact]
    public async Task Guard_CancellationBeforeRequestAbortedIsSet_TreatedAsTheClientLeaving()
    {
        using var aborted = new CancellationTokenSource();
        var ctx = new DefaultHttpContext { RequestAborted = aborted.Token };

        await ServingApp.Guard(ctx, _ =>
        {
            aborted.CancelAfter(TimeSpan.FromMilliseconds(50));   // Kestrel's abort arrives after the failed write
            throw new TaskCanceledException();
        });

        Assert.True(aborted.IsCancellationRequested);
    }

    [Fact]
    public async Task Guard_CancellationWithTheClientStillThere_Rethrown()
    {
        var ctx = new DefaultHttpContext { RequestAborted = CancellationToken.None };

        await Assert.ThrowsAsync<TaskCanceledException>(() => ServingApp.Guard(ctx, _ => throw new TaskCanceledException()));
    }
}
