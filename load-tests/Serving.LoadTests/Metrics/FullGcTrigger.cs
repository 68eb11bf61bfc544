using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;

namespace Serving.LoadTests.Metrics;

/// <summary>
/// Makes a local .NET server process run a full blocking garbage collection, over the runtime's diagnostics channel
/// (the way <c>dotnet-gcdump</c> does: an EventPipe session with the GC-heap-collect keyword induces one), so that the
/// managed heap it then reports is what is really retained. The server needs no endpoint for this, and a remote one
/// cannot be asked.
/// </summary>
internal static class FullGcTrigger
{
    /// <summary>Microsoft-Windows-DotNETRuntime's GCHeapCollect keyword: enabling it forces a blocking gen-2 GC.</summary>
    private const long GcHeapCollectKeyword = 0x800000;

    /// <summary>Induces the collection and waits for it; false when the process cannot be reached.</summary>
    public static async Task<bool> InduceAsync(int processId, CancellationToken cancellationToken)
    {
        try
        {
            var client = new DiagnosticsClient(processId);
            var provider = new EventPipeProvider("Microsoft-Windows-DotNETRuntime", EventLevel.Informational, GcHeapCollectKeyword);
            using var session = client.StartEventPipeSession([provider], requestRundown: false, circularBufferMB: 16);
            // Drain the stream so the runtime never blocks on a full buffer; the collection runs as the session starts.
            var drain = session.EventStream.CopyToAsync(Stream.Null, cancellationToken);
            await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
            await session.StopAsync(cancellationToken);
            await drain;
            return true;
        }
        catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or IOException or TimeoutException)
        {
            Console.Error.WriteLine($"could not induce a GC in process {processId}: {e.Message}");
            return false;
        }
    }
}
