using System.Diagnostics;
using Microsoft.Extensions.Options;
using Serving.Engine.Runtime;

namespace Serving.Runtime.Hosting;

/// <summary>
/// Every <see cref="ModelOptions.NativeHeapTrimSeconds"/>, hands the C heap's free pages back to the OS
/// (<see cref="NativeHeap.Trim"/>) so the resident set tracks live memory under steady traffic instead of creeping up
/// with allocator fragmentation. A trim walks the arenas under their locks (its duration is logged at Debug; not
/// benchmarked yet), so it runs rarely and off the engine thread.
/// </summary>
internal sealed partial class NativeHeapTrimmer(IOptions<ModelOptions> options, TimeProvider time, ILogger<NativeHeapTrimmer> log)
    : BackgroundService
{
    private long _trims;

    /// <summary>Trims done since start.</summary>
    public long Trims => Interlocked.Read(ref _trims);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        double seconds = options.Value.NativeHeapTrimSeconds;
        if (seconds <= 0 || !NativeHeap.CanTrim)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(seconds), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                long start = Stopwatch.GetTimestamp();
                bool released = NativeHeap.Trim();
                Interlocked.Increment(ref _trims);
                LogTrimmed(log, released, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "native heap trimmed in {Milliseconds:F2} ms (pages released: {Released})")]
    private static partial void LogTrimmed(ILogger logger, bool released, double milliseconds);
}
