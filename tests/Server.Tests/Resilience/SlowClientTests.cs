using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Serving.Authoring.Synthetic;
using Serving.Runtime.Generation;
using Serving.Server.Tests.Support;
using Xunit.Abstractions;

namespace Serving.Server.Tests.Resilience;

/// <summary>
/// SSE readers that stall (connect with a tiny receive window, send a 2,000-token streaming request with logprobs, never
/// read): other requests keep being served, the engine finishes the stalled requests and holds nothing for them while the
/// clients are still stalled, and the server process does not keep their output as text — the managed heap grows by far
/// less than the ~6 MB nobody has read. Part of it sits in the kernel's socket buffers (up to <c>net.ipv4.tcp_wmem</c>
/// per connection, which differs between machines); the rest waits in each request's <c>RequestOutput</c> as numbers,
/// so the bound holds with the send buffers at their minimum too (figures in docs/reliability.md).
/// </summary>
[Collection(nameof(ProcessWideMeasurements))]
public sealed class SlowClientTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Stalled = 8, MaxTokens = 2000;
    private readonly string _root = TestDirectories.Path("slow");
    private ServerProcess _server = null!;

    public async Task InitializeAsync()
    {
        string model = Path.Combine(_root, "base");
        SyntheticModelWriter.Write(model, new SyntheticModelSpec { Seed = 81 });
        _server = await ServerProcess.StartAsync("--model", model, "--dtype", "float32", "--max-sequences", "8", "--max-context", "2048",
            "--cache-dir", Path.Combine(_root, "cache"), "--Logging:LogLevel:Default", "Warning");
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        TestDirectories.Delete(_root);
    }

    /// <summary>A raw connection with a tiny receive window that sends one streaming request and then reads nothing.</summary>
    private async Task<Socket> OpenStalledStream(int i)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 2048 };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _server.Address.Port));
        string body = $$"""{"model":"base","prompt":"stall {{i}}","max_tokens":{{MaxTokens}},"ignore_eos":true,"stream":true,"logprobs":5}""";
        string request = $"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}";
        await socket.SendAsync(Encoding.UTF8.GetBytes(request));
        return socket;
    }

    [Fact]
    public async Task StalledSseReaders_OthersServedEngineReleasesAndOutputNotHeldInProcess()
    {
        // One stream of the same kind first, so what its first use builds (pools, caches, compiled code) is in the baseline.
        await HttpJson.StreamAsync(_server.Http, "/v1/completions", new { model = "base", prompt = "warm up", max_tokens = 64, ignore_eos = true, stream = true, logprobs = 5 });
        long heapBefore = await SettledHeapAsync();
        var sockets = new List<Socket>();
        for (int i = 0; i < Stalled; i++)
            sockets.Add(await OpenStalledStream(i));
        try
        {
            // Others are served while the stalled streams sit there.
            for (int i = 0; i < 10; i++)
            {
                var (status, body) = await HttpJson.PostAsync(_server.Http, "/v1/completions", new { model = "base", prompt = $"served {i}", max_tokens = 4 });
                Assert.True(status == 200, body.ToJsonString());
            }

            var worker = _server.Services.GetRequiredService<EngineWorker>();
            Assert.True(SpinWait.SpinUntil(() => worker.Running == 0 && worker.Waiting == 0 && worker.UsedKvBlocks == 0 && worker.TrackedRequests == 0, 120_000),
                $"the engine still holds the stalled requests: running {worker.Running}, KV blocks {worker.UsedKvBlocks}, tracked {worker.TrackedRequests}");
            long heapWhileStalled = await SettledHeapAsync();

            long received = 0;
            int complete = 0;
            foreach (var socket in sockets)
            {
                var (bytes, done) = await Drain(socket);
                received += bytes;
                complete += done ? 1 : 0;
            }

            long growth = heapWhileStalled - heapBefore;
            output.WriteLine($"{Stalled} stalled streams of {MaxTokens} tokens: {received / 1024} KiB unread while stalled, managed heap grew {growth / 1024} KiB, " +
                $"{complete} streams complete when finally read");
            Assert.True(received > 4L << 20, $"only {received} bytes were sent: the test did not stall enough output");
            // Holding the output would take at least the unread bytes (UTF-8, or twice as strings). The heap is process-wide:
            // this class runs alone (ProcessWideMeasurements); with other tests beside it a CI run saw 0.49× with nothing held.
            Assert.True(growth < received, $"the managed heap grew {growth} bytes while {received} bytes of output waited for stalled readers");
        }
        finally
        {
            foreach (var socket in sockets)
                socket.Dispose();
        }
    }

    /// <summary>
    /// The managed heap after full collections, the least of three readings 200 ms apart: what is held, not what some
    /// background work (a timer's callback, a finishing log write) happened to hold at one instant.
    /// </summary>
    private static async Task<long> SettledHeapAsync()
    {
        long least = long.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            if (i > 0)
                await Task.Delay(200);
            least = Math.Min(least, GC.GetTotalMemory(forceFullCollection: true));
        }

        return least;
    }

    /// <summary>Reads what the server still sends until it closes the connection; complete = the stream's [DONE] arrived.</summary>
    private static async Task<(long Bytes, bool Complete)> Drain(Socket socket)
    {
        var buffer = new byte[64 * 1024];
        var tail = new StringBuilder();
        long total = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
            {
                total += n;
                tail.Append(Encoding.UTF8.GetString(buffer, 0, n));
                if (tail.Length > 256)
                    tail.Remove(0, tail.Length - 256);
                if (tail.ToString().Contains("data: [DONE]", StringComparison.Ordinal))
                    return (total, true);
            }
        }
        catch (SocketException)
        {
        }
        catch (OperationCanceledException)
        {
        }

        return (total, false);
    }
}
